"""`layra-migrate audit` against a real wire-protocol server and realistic data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from layra_migrate.sandbox.layra_data import Dataset
from tests.conftest import KEY_ENV, assert_no_canary


def fingerprint(db: Any) -> dict[str, list[Any]]:
    return {
        name: sorted(repr(sorted(d.items())) for d in db[name].find({}))
        for name in sorted(db.list_collection_names())
    }


def test_audit_counts_every_proxied_reference_exactly(
    seeded_db: Any, dataset: Dataset, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    before = fingerprint(seeded_db)
    plan = tmp_path / "plan.yaml"
    r = cli(
        "audit",
        "--json",
        "--litellm-config",
        str(litellm_config),
        "--plan-out",
        str(plan),
        env=KEY_ENV,
    )
    assert r.code == 0, r.stderr
    data = r.json()
    exp = dataset.expected
    assert data["schema"] == "layra-migrate/audit/v1"
    for loc, coll in [
        ("model_config", "model_config"),
        ("conversations", "conversations"),
        ("workflows", "workflows"),
        ("custom_nodes", "nodes"),
    ]:
        got = data["locations"][loc]
        assert got["documents"] == exp.documents[coll], loc
        assert got["references"] == exp.references[loc], loc
        assert got["via_proxy"] == exp.via_proxy[loc], loc
    models = {m["model_name"]: m for m in data["models"]}
    assert set(models) == set(exp.by_name)
    for name, by_loc in exp.by_name.items():
        assert models[name]["via_proxy"] == sum(by_loc.values()), name
        assert models[name]["by_location"] == dict(by_loc), name
        assert models[name]["users"] == len(exp.users_by_name[name]), name
    assert data["proxy_url_spellings"] == dict(exp.spellings)
    # the database was not touched
    assert fingerprint(seeded_db) == before
    assert_no_canary(r.stdout, r.stderr, plan.read_text())


def test_audit_resolves_routes_and_explains_the_rest(
    seeded_db: Any, cli: Any, litellm_config: Path
) -> None:
    r = cli("audit", "--json", "--litellm-config", str(litellm_config), env=KEY_ENV)
    assert r.code == 0, r.stderr
    res = {m["model_name"]: m["resolution"] for m in r.json()["models"]}
    want = {
        "status": "resolved",
        "provider": "deepseek",
        "base_url": "https://api.deepseek.com",
        "model": "deepseek-reasoner",
        "api_key_env": "DEEPSEEK_API_KEY",
        "api_key_present": True,
    }
    assert {k: res["deepseek-reasoner"][k] for k in want} == want
    # default key variable, no api_key in config
    assert res["deepseek-chat"]["api_key_env"] == "DEEPSEEK_API_KEY"
    # alias -> group
    assert res["thesis-default"]["model"] == "deepseek-reasoner"
    # ollama cloud: /v1 appended, provider id after the prefix
    assert res["kimi-k2"]["base_url"] == "https://ollama.com/v1"
    assert res["kimi-k2"]["model"] == "kimi-k2:1t"
    assert res["gemini-2.5-flash"]["base_url"].startswith(
        "https://generativelanguage.googleapis.com"
    )
    # wildcard passthrough resolves the concrete name the app sends
    assert res["openai/gpt-4.1-mini"]["model"] == "gpt-4.1-mini"
    assert res["openai/gpt-4.1-mini"]["provider"] == "openai"
    # a bare name with no route of its own: LiteLLM infers openai from its model map and
    # serves it through the openai/* wildcard, so the plan does too
    assert (res["gpt-4o"]["provider"], res["gpt-4o"]["model"]) == ("openai", "gpt-4o")
    assert "wildcard openai/*" in res["gpt-4o"]["route"]
    # every proxy behaviour that applied, per model, with what changes for users
    lost = {b["kind"]: b for b in res["deepseek-reasoner"]["lost_behaviours"]}
    assert "deepseek-chat" in lost["fallbacks"]["detail"]
    assert {"fallbacks", "drop_params", "caching", "timeout"} <= set(lost)
    assert all(b["impact"] for b in lost.values())
    assert "fallbacks" not in {b["kind"] for b in res["kimi-k2"]["lost_behaviours"]}
    # unresolved, each with its reason
    assert res["gpt-oss-120b"]["reason_code"] == "ambiguous"
    assert len(res["gpt-oss-120b"]["choices"]) >= 1
    assert res["voyage-3"]["reason_code"] == "not_chat_model"
    assert res["claude-sonnet-4"]["reason_code"] == "unsupported_provider"


def test_blocking_counts_unresolved_and_missing_keys(
    seeded_db: Any, dataset: Dataset, cli: Any, litellm_config: Path
) -> None:
    env = {k: v for k, v in KEY_ENV.items() if k != "GEMINI_API_KEY"}
    data = cli("audit", "--json", "--litellm-config", str(litellm_config), env=env).json()
    by = dataset.expected.by_name
    unresolved = {"gpt-oss-120b", "voyage-3", "claude-sonnet-4", "gemini-2.5-flash"}
    # plus each rename that would give a user two models with one name (Layra's rule)
    dups = [
        d
        for d in data["duplicates"]
        if d["resolution"] == "blocking" and d["model_name"] not in unresolved
    ]
    assert dups  # the generated data holds such users
    assert data["blocking"] == sum(sum(by[n].values()) for n in unresolved if n in by) + len(dups)
    gem = next(m for m in data["models"] if m["model_name"] == "gemini-2.5-flash")
    assert gem["resolution"]["api_key_present"] is False
    assert gem["resolution"]["reason_code"] == "key_missing"


def test_audit_reports_anomalies(seeded_db: Any, dataset: Dataset, cli: Any) -> None:
    data = cli("audit", "--json").json()
    kinds = {(a["kind"], a["location"]): a["count"] for a in data["anomalies"]}
    exp = dataset.expected
    assert kinds[("unknown_document_shape", "model_config")] == exp.wrong_shape
    assert kinds[("dangling_selected_model", "model_config")] == exp.dangling
    assert kinds[("missing_field", "model_config")] == exp.missing_score_threshold
    assert kinds[("empty_models", "model_config")] == exp.empty_models
    assert kinds.get(("missing_model_config", "workflows"), 0) == exp.vlm_without_config
    for loc, n in exp.missing_url.items():
        assert kinds[("missing_model_url", loc)] == n


def test_plan_file_is_readable_and_holds_no_values(
    seeded_db: Any, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    r = cli("audit", "--litellm-config", str(litellm_config), "--plan-out", str(plan), env=KEY_ENV)
    assert r.code == 0, r.stderr
    data = yaml.safe_load(plan.read_text())
    assert data["format"] == "layra-migrate/plan/v1"
    assert data["models"]["deepseek-reasoner"]["target"]["api_key_env"] == "DEEPSEEK_API_KEY"
    assert data["models"]["gpt-oss-120b"]["target"] is None
    assert len(data["models"]["gpt-oss-120b"]["choices"]) >= 1
    kinds = {b["kind"] for b in data["models"]["deepseek-reasoner"]["lost_behaviours"]}
    assert {"fallbacks", "drop_params"} <= kinds
    assert "http://litellm-proxy:4000/v1" in data["proxy_urls"]
    assert_no_canary(plan.read_text(), r.stdout, r.stderr)
    assert "next:" in r.stdout


def test_extra_proxy_url_and_human_output(db: Any, cli: Any) -> None:
    db.conversations.insert_one(
        {
            "conversation_id": "c1",
            "username": "u",
            "model_config": {"model_name": "m", "model_url": "https://gw.example:8443/v1"},
        }
    )
    assert cli("audit", "--json").json()["locations"]["conversations"]["via_proxy"] == 0
    r = cli("audit", "--json", "--proxy-url", "https://GW.example:8443")
    assert r.json()["locations"]["conversations"]["via_proxy"] == 1
    human = cli("audit", "--proxy-url", "https://gw.example:8443")
    assert human.code == 0 and "conversations" in human.stdout and "unresolved" in human.stdout


def test_empty_database_counts_nothing(cli: Any) -> None:
    data = cli("audit", "--json").json()
    assert data["via_proxy"] == 0 and data["models"] == []
    assert all(v["documents"] == 0 for v in data["locations"].values())


def test_bad_config_inputs_exit_2_with_file_and_line(cli: Any, tmp_path: Path) -> None:
    missing = cli("audit", "--litellm-config", str(tmp_path / "nope.yaml"))
    assert missing.code == 2 and "nope.yaml" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_list:\n  - model_name: x\n    litellm_params: {model: [\n")
    r = cli("audit", "--litellm-config", str(bad))
    assert r.code == 2 and "bad.yaml:" in r.stderr and "Traceback" not in r.stderr
    empty = tmp_path / "empty.yaml"
    empty.write_text("general_settings: {}\n")
    r = cli("audit", "--litellm-config", str(empty))
    assert r.code == 2 and "model_list" in r.stderr
    inc = tmp_path / "inc.yaml"
    inc.write_text("include: [missing.yaml]\nmodel_list: []\n")
    r = cli("audit", "--litellm-config", str(inc))
    assert r.code == 2 and "missing.yaml" in r.stderr
    pyobj = tmp_path / "evil.yaml"
    pyobj.write_text("model_list: !!python/object/apply:os.system ['true']\n")
    assert cli("audit", "--litellm-config", str(pyobj)).code == 2


def test_unreachable_and_invalid_mongo(tmp_path: Path) -> None:
    import time

    from tests.conftest import run_cli

    t = time.monotonic()
    r = run_cli(
        "audit",
        "--mongo-uri",
        "mongodb://127.0.0.1:1/?directConnection=true",
        "--timeout",
        "1",
        cwd=tmp_path,
    )
    assert r.code == 3 and "unreachable" in r.stderr
    assert time.monotonic() - t < 20
    assert r.stderr.count("\n") <= 2
    r = run_cli("audit", "--mongo-uri", "notmongo://x", cwd=tmp_path)
    assert r.code == 2 and "invalid MongoDB URI" in r.stderr


def test_password_in_uri_never_printed(mongo_uri: str, tmp_path: Path) -> None:
    from tests.conftest import run_cli

    uri = "mongodb://admin:CANARYpassWORD42@127.0.0.1:1/?authSource=admin&directConnection=true"
    r = run_cli("audit", "-v", "--json", "--timeout", "1", "--mongo-uri", uri, cwd=tmp_path)
    assert r.code == 3
    assert_no_canary(r.stdout, r.stderr)
    assert "****" in r.stderr
