"""`layra-migrate verify` end to end: real CLI subprocess, real MongoDB wire protocol,
the real OpenAI SDK against the loopback provider stub."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from layra_migrate.sandbox.provider_stub import ProviderStub
from layra_migrate.sandbox.servers import free_port
from layra_migrate.toolstate import VERIFY_RUNS
from tests.conftest import KEY_ENV, assert_no_canary

DIRECT_KEY = "sk-CANARYdirectDEEPSEEK-0000"
OTHER_KEY = "sk-proj-CANARYdirectOPENAI-0000"
PROXY = "http://litellm-proxy:4000/v1"
MASTER = "sk-CANARYmasterKEY-0001"


@pytest.fixture(scope="module")
def stub() -> Iterator[ProviderStub]:
    # Accepts only the two "direct" keys and the DeepSeek env key: any other key gets 401.
    with ProviderStub(
        behaviours={
            "deepseek-chat": "ok",
            "deepseek-reasoner": "reasoning",
            "gpt-4o": "404",
            "gemini-2.5-flash": "429",
            "kimi-k2:1t": "stall",
        },
        valid_keys=frozenset({DIRECT_KEY, OTHER_KEY, KEY_ENV["DEEPSEEK_API_KEY"]}),
        stall_s=15,
    ) as s:
        yield s


def snake(name: str, url: Any, key: Any, **params: Any) -> dict[str, Any]:
    cfg = {
        "model_id": f"thesis_{name}",
        "model_name": name,
        "model_url": url,
        "api_key": key,
        "temperature": -1,
        "max_length": -1,
        "top_P": -1,
        "top_K": -1,
    }
    cfg.update(params)
    return cfg


def camel(name: str, url: Any, key: Any, **params: Any) -> dict[str, Any]:
    cfg = {
        "modelId": f"thesis_{name}",
        "modelName": name,
        "modelURL": url,
        "apiKey": key,
        "temperature": -1,
        "maxLength": -1,
        "topP": -1,
        "topK": -1,
    }
    cfg.update(params)
    return cfg


def seed(
    db: Any,
    *,
    model_config: Sequence[dict[str, Any]] = (),
    conversations: Sequence[dict[str, Any]] = (),
    workflows: Sequence[dict[str, Any]] = (),
    custom: Sequence[dict[str, Any]] = (),
) -> None:
    if model_config:
        db.model_config.insert_one(
            {"username": "thesis", "selected_model": "x", "models": list(model_config)}
        )
    for i, cfg in enumerate(conversations):
        db.conversations.insert_one(
            {"conversation_id": f"c{i}", "username": "thesis", "model_config": cfg}
        )
    if workflows:
        db.workflows.insert_one(
            {
                "workflow_id": "wf",
                "username": "thesis",
                "nodes": [
                    {"id": f"n{i}", "type": "vlm", "data": {"nodeType": "vlm", "modelConfig": cfg}}
                    for i, cfg in enumerate(workflows)
                ]
                + [{"id": "code", "type": "code", "data": {}}],
            }
        )
    if custom:
        db.nodes.insert_one(
            {
                "username": "thesis",
                "custom_nodes": {
                    f"Node {i}": {"data": {"nodeType": "vlm", "modelConfig": cfg}}
                    for i, cfg in enumerate(custom)
                },
            }
        )


def targets_by_model(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["model"]: t for t in data["targets"]}


def test_database_source_dedupes_counts_and_classifies(
    db: Any, cli: Any, stub: ProviderStub
) -> None:
    url = stub.base_url
    seed(
        db,
        model_config=[
            snake("deepseek-chat", url, DIRECT_KEY, temperature=0.3),
            snake("deepseek-reasoner", url, DIRECT_KEY),
            snake("deepseek-chat", PROXY, MASTER),  # not migrated
            snake("claude-sonnet-4", "https://api.anthropic.com/v1", OTHER_KEY),
            snake("gpt-4o", "", None),
        ],
        # same target, trailing slash, snake_case snapshot without model_id
        conversations=[
            {
                k: v
                for k, v in snake("deepseek-chat", url + "/", DIRECT_KEY).items()
                if k != "model_id"
            },
            snake("deepseek-chat", "HTTP://LiteLLM-Proxy:4000/v1/", MASTER),
        ],
        workflows=[
            camel("deepseek-chat", url, DIRECT_KEY, topP=0.9),
            snake("gpt-4o", url, OTHER_KEY),
        ],
        custom=[
            camel("deepseek-chat", url, DIRECT_KEY),
            camel("deepseek-chat", url, "sk-CANARYvirtualKEY0001-ijklmnop"),
        ],
    )
    stub.clear()
    r = cli("verify", "--json", "--timeout", "5")
    assert r.code == 5, r.stderr
    data = r.json()
    assert data["schema"] == "layra-migrate/verify/v1" and data["source"] == "database"
    assert data["not_migrated"] == 2
    rows = data["targets"]
    chat = [t for t in rows if t["model"] == "deepseek-chat"]
    # told apart by the masked key only (never the key itself)
    goods = [t for t in chat if t["key"] == "sk-...0000"]
    [bad] = [t for t in chat if t["key"] == "sk-...mnop"]
    assert bad["references"] == 1 and bad["status"] == "auth_failed"
    assert bad["hint"].startswith("key rejected")
    # model_config + conversation + workflow + custom node: one target, probed once per
    # distinct parameter shape its references send (most common first), never a mix
    assert all(t["references"] == 4 and t["status"] == "ok" for t in goods)
    assert [t["params"] for t in goods] == [None, {"temperature": 0.3}, {"top_p": 0.9}]
    assert [(t["shape"]["index"], t["shape"]["of"], t["shape"]["references"]) for t in goods] == [
        (1, 3, 2),
        (2, 3, 1),
        (3, 3, 1),
    ]
    good = goods[0]
    assert good["latency_ms"] >= 0 and good["first_token_ms"] is not None
    by = {(t["model"], t["status"]) for t in rows}
    assert ("deepseek-reasoner", "ok") in by
    assert ("gpt-4o", "model_not_found") in by
    assert ("gpt-4o", "skipped") in by  # empty model_url
    assert ("claude-sonnet-4", "skipped") in by  # anthropic, never sent
    assert data["ok"] == 4 and data["failed"] == 2 and data["skipped"] == 2
    # request shapes of the deduplicated target: each sent once, exactly as configured
    sent = [q for q in stub.requests_for("deepseek-chat") if q.api_key == DIRECT_KEY]
    shapes = sorted(
        sorted((k, v) for k, v in q.body.items() if k in ("temperature", "top_p", "max_tokens"))
        for q in sent
    )
    assert shapes == [[], [("temperature", 0.3)], [("top_p", 0.9)]]
    assert all(
        q.body["stream"] is True and q.body["stream_options"] == {"include_usage": True}
        for q in sent
    )
    assert not any(q.model == "claude-sonnet-4" for q in stub.requests)
    assert not any(q.api_key == MASTER for q in stub.requests)
    assert_no_canary(r.stdout, r.stderr)
    # the run is recorded, without keys
    [run] = list(db[VERIFY_RUNS].find({}))
    assert run["source"] == "database" and run["passed"] is False
    assert len(run["targets"]) == len(rows)
    assert {t["status"] for t in run["targets"]} >= {"ok", "auth_failed", "skipped"}
    assert all("api_key" not in t for t in run["targets"])
    assert_no_canary(repr(run))


def test_database_all_ok_exits_zero_and_skipped_needs_flag(
    db: Any, cli: Any, stub: ProviderStub
) -> None:
    seed(
        db,
        model_config=[
            snake("deepseek-chat", stub.base_url, DIRECT_KEY),
            snake("voyage-3", "https://api.voyageai.com/v1", OTHER_KEY),
        ],
    )
    r = cli("verify", "--timeout", "5")
    assert r.code == 5, r.stdout + r.stderr
    assert "skipped" in r.stdout and "voyage" in r.stdout
    r = cli("verify", "--timeout", "5", "--allow-skipped")
    assert r.code == 0, r.stdout + r.stderr
    seed(db, model_config=[snake("deepseek-chat", stub.base_url, OTHER_KEY)])
    r = cli("verify", "--timeout", "5")  # same URL and model, two keys: the masked key shows
    assert "deepseek-chat [key sk-...0000]" in r.stdout, r.stdout
    assert "deepseek-chat [key sk-proj-...0000]" in r.stdout, r.stdout
    assert_no_canary(r.stdout, r.stderr)
    r = cli("verify", "--timeout", "5", "--only", "voyage", "--json")
    assert r.code == 5 and [t["provider"] for t in r.json()["targets"]] == ["voyage"]
    assert_no_canary(r.stdout, r.stderr)
    assert db[VERIFY_RUNS].count_documents({}) == 4
    assert db[VERIFY_RUNS].count_documents({"passed": True}) == 1


def write_plan(path: Path, base_url: str) -> Path:
    def tgt(model: str, env: str, provider: str = "deepseek") -> dict[str, Any]:
        return {"provider": provider, "base_url": base_url, "model": model, "api_key_env": env}

    plan = {
        "format": "layra-migrate/plan/v1",
        "database": None,
        "proxy_urls": ["http://litellm-proxy:4000/v1", "http://localhost:4000/v1"],
        "models": {
            "deepseek-reasoner": {
                "references": 3,
                "target": tgt("deepseek-reasoner", "DEEPSEEK_API_KEY"),
            },
            "thesis-default": {
                "references": 1,
                "target": tgt("deepseek-reasoner", "DEEPSEEK_API_KEY"),
            },
            "deepseek-chat": {"references": 2, "target": tgt("deepseek-chat", "DEEPSEEK_API_KEY")},
            # a key the stub rejects
            "openai/gpt-4.1-mini": {
                "references": 1,
                "target": tgt("gpt-4.1-mini", "OPENAI_API_KEY", "openai"),
            },
            # key variable not set
            "gemini-2.5-flash": {
                "references": 1,
                "target": tgt("gemini-2.5-flash", "GEMINI_API_KEY", "gemini"),
            },
            "kimi-k2": {
                "references": 1,
                "target": tgt("kimi-k2:1t", "DEEPSEEK_API_KEY", "ollama_chat"),
            },
            "gpt-4o": {"references": 4, "target": None, "reason": "config.yaml has no route"},
        },
    }
    path.write_text(yaml.safe_dump(plan), encoding="utf-8")
    return path


def test_plan_source_probes_what_the_rewrite_would_write(
    db: Any, cli: Any, stub: ProviderStub, tmp_path: Path
) -> None:
    seed(
        db,
        model_config=[
            snake("deepseek-reasoner", PROXY, MASTER, max_length=2048),
            snake("thesis-default", "http://localhost:4000/v1", MASTER),
            snake("deepseek-chat", PROXY, MASTER, temperature=0.2),
        ],
        workflows=[
            camel("deepseek-chat", "http://litellm-proxy:4000", MASTER, temperature=0.2, topP=0.5)
        ],
    )
    plan = write_plan(tmp_path / "plan.yaml", stub.base_url)
    env = {k: v for k, v in KEY_ENV.items() if k != "GEMINI_API_KEY"}
    stub.clear()
    started = time.monotonic()
    r = cli("verify", "--plan", str(plan), "--json", "--timeout", "2", env=env)
    wall = time.monotonic() - started
    assert r.code == 5, r.stderr
    data = r.json()
    assert data["source"] == "plan"
    t = targets_by_model(data)
    assert t["deepseek-reasoner"]["status"] == "ok"
    assert sorted(t["deepseek-reasoner"]["model_names"]) == ["deepseek-reasoner", "thesis-default"]
    assert t["deepseek-reasoner"]["references"] == 2  # from the database's proxied references
    assert t["deepseek-chat"]["status"] == "ok" and t["deepseek-chat"]["references"] == 2
    assert t["gpt-4.1-mini"]["status"] == "auth_failed"
    assert t["gpt-4.1-mini"]["hint"] == "key rejected: check OPENAI_API_KEY"
    assert t["gemini-2.5-flash"]["status"] == "auth_failed"
    assert "GEMINI_API_KEY is not set" in t["gemini-2.5-flash"]["detail"]
    assert t["kimi-k2:1t"]["status"] == "timeout"
    assert t["gpt-4o"]["status"] == "skipped"
    assert wall < 2 * 1.3 + 6, f"verify --plan took {wall:.1f}s"  # one timeout + CLI start-up
    # keys from the environment, the configured parameters, nothing for the unset key
    # (one probe per distinct shape: each reference's own parameters, never a mix)
    reasoner = stub.requests_for("deepseek-reasoner")
    assert {q.api_key for q in reasoner} == {KEY_ENV["DEEPSEEK_API_KEY"]}
    assert sorted(q.body.get("max_tokens", 0) for q in reasoner) == [0, 2048]
    chat = stub.requests_for("deepseek-chat")
    assert sorted((q.body["temperature"], q.body.get("top_p", 0)) for q in chat) == [
        (0.2, 0),
        (0.2, 0.5),
    ]
    assert stub.requests_for("gemini-2.5-flash") == []
    assert [q.api_key for q in stub.requests_for("gpt-4.1-mini")] == [KEY_ENV["OPENAI_API_KEY"]]
    assert_no_canary(r.stdout, r.stderr)
    # the database was not changed, only the run recorded
    assert db.model_config.find_one({})["models"][0]["model_url"] == PROXY
    assert db[VERIFY_RUNS].find_one({})["source"] == "plan"


def test_rich_table_shows_hints_and_no_key(
    db: Any, cli: Any, stub: ProviderStub, tmp_path: Path
) -> None:
    plan = write_plan(tmp_path / "plan.yaml", stub.base_url)
    r = cli("verify", "--plan", str(plan), "--timeout", "2", "--only", "openai", env=KEY_ENV)
    assert r.code == 5
    assert "key rejected: check OPENAI_API_KEY" in r.stdout
    assert "auth_failed" in r.stdout and "gpt-4.1-mini" in r.stdout
    assert "Incorrect API key provided" in r.stdout  # the provider's words, key masked
    assert_no_canary(r.stdout, r.stderr)
    # a narrow terminal gets one block per target, with the same hint
    r = cli(
        "verify",
        "--plan",
        str(plan),
        "--timeout",
        "2",
        "--only",
        "openai",
        env={**KEY_ENV, "COLUMNS": "80"},
    )
    assert r.code == 5
    assert "hint: key rejected: check OPENAI_API_KEY" in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    assert_no_canary(r.stdout, r.stderr)


def test_mongo_unreachable_exits_3_quickly(cli: Any, tmp_path: Path) -> None:
    started = time.monotonic()
    r = cli(
        "verify",
        "--json",
        "--mongo-timeout",
        "1",
        "--mongo-uri",
        f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
        mongo=False,
    )
    assert r.code == 3, r.stderr
    assert time.monotonic() - started < 15
    assert r.json()["schema"] == "layra-migrate/verify/v1"


@pytest.mark.parametrize(
    "args",
    [
        ("--timeout", "0"),
        ("--concurrency", "0"),
        ("--plan", "does-not-exist.yaml"),
        ("--only", "nosuchprovider"),
        ("--bogus-flag",),
    ],
)
def test_bad_input_exits_2(db: Any, cli: Any, args: tuple[str, ...]) -> None:
    seed(db, model_config=[snake("m", "http://127.0.0.1:9/v1", DIRECT_KEY)])
    r = cli("verify", *args)
    assert r.code == 2, (args, r.stdout, r.stderr)
    assert_no_canary(r.stdout, r.stderr)


def test_stale_plan_is_refused(db: Any, cli: Any, stub: ProviderStub, tmp_path: Path) -> None:
    seed(
        db,
        model_config=[
            snake("deepseek-chat", PROXY, MASTER),
            snake("brand-new-model", PROXY, MASTER),
        ],
    )
    plan = write_plan(tmp_path / "plan.yaml", stub.base_url)
    stub.clear()
    r = cli("verify", "--plan", str(plan), "--timeout", "2", env=KEY_ENV)
    assert r.code == 4, r.stdout + r.stderr
    assert "stale plan" in r.stderr and "brand-new-model" in r.stderr
    assert stub.requests == []


def test_audit_plan_then_verify_on_realistic_data(
    seeded_db: Any, cli: Any, tmp_path: Path, stub: ProviderStub
) -> None:
    """The sandbox's LiteLLM config pointed at the stub: audit writes the plan, verify --plan
    probes every resolved target once per distinct parameter shape (at most 3) and skips the
    unresolved names."""
    from layra_migrate.sandbox.litellm_config import write_litellm_config

    with ProviderStub(behaviours={"gemini-2.5-flash": "503"}) as provider:
        config = write_litellm_config(tmp_path / "litellm", provider_base=provider.base_url)
        plan = tmp_path / "plan.yaml"
        r = cli(
            "audit", "--litellm-config", str(config), "--plan-out", str(plan), "--json", env=KEY_ENV
        )
        assert r.code == 0, r.stderr
        proxied = {m["model_name"]: m["via_proxy"] for m in r.json()["models"]}
        r = cli("verify", "--plan", str(plan), "--json", "--timeout", "5", env=KEY_ENV)
        assert r.code == 5, r.stderr
        data = r.json()
        probed = [t for t in data["targets"] if t["status"] != "skipped"]
        rows = {t["model"]: t for t in probed}
        assert rows["deepseek-reasoner"]["status"] == "ok"
        assert sorted(rows["deepseek-reasoner"]["model_names"]) == [
            "deepseek-reasoner",
            "thesis-default",
        ]
        assert rows["deepseek-reasoner"]["references"] == (
            proxied["deepseek-reasoner"] + proxied["thesis-default"]
        )
        assert rows["gemini-2.5-flash"]["status"] == "server_error"
        assert rows["gemini-2.5-flash"]["attempts"] == 2
        others = ("deepseek-chat", "kimi-k2:1t", "gpt-4.1-mini", "gpt-4o")
        assert {rows[m]["status"] for m in others} == {"ok"}
        skipped = {t["model"] for t in data["targets"] if t["status"] == "skipped"}
        # gpt-4o is served by the openai/* route through LiteLLM's provider inference
        assert skipped == {"gpt-oss-120b", "voyage-3", "claude-sonnet-4"}
        assert {t["model"] for t in probed} == {
            "deepseek-reasoner",
            "deepseek-chat",
            "gemini-2.5-flash",
            "kimi-k2:1t",
            "gpt-4.1-mini",
            "gpt-4o",
        }
        # one request per (resolved target, shape), plus the one retry, each carrying its
        # shape's parameters exactly; keys from the environment
        for model in rows:
            shapes = [t for t in probed if t["model"] == model]
            assert 1 <= len(shapes) <= 3
            assert len({repr(t["params"]) for t in shapes}) == len(shapes)
            sent = [
                {
                    k: v
                    for k, v in (q.body or {}).items()
                    if k in ("temperature", "top_p", "max_tokens")
                }
                or None
                for q in provider.requests_for(model)
            ]
            expected = [t["params"] for t in shapes for _ in range(t["attempts"])]
            assert sorted(map(repr, sent)) == sorted(map(repr, expected))
        assert len(provider.requests) == sum(t["attempts"] for t in probed)
        keys = {q.model: q.api_key for q in provider.requests}
        assert keys["deepseek-chat"] == KEY_ENV["DEEPSEEK_API_KEY"]
        assert keys["gemini-2.5-flash"] == KEY_ENV["GEMINI_API_KEY"]
        assert all(q.path.endswith("/chat/completions") for q in provider.requests)
        assert_no_canary(r.stdout, r.stderr)


async def test_last_verify_run_is_what_decommission_reads(
    db: Any, cli: Any, mongo_uri: str, db_name: str, stub: ProviderStub
) -> None:
    from pymongo import AsyncMongoClient

    from layra_migrate.verify import last_verify_run

    seed(db, model_config=[snake("deepseek-chat", stub.base_url, "sk-wrong-key-0000000000")])
    assert cli("verify", "--timeout", "5").code == 5
    db.model_config.update_one({}, {"$set": {"models.0.api_key": DIRECT_KEY}})
    r = cli("verify", "--timeout", "5", "--json")
    assert r.code == 0 and r.json()["recorded"] is True
    client: Any = AsyncMongoClient(mongo_uri)
    try:
        run = await last_verify_run(client[db_name], "database")
        assert await last_verify_run(client[db_name], "plan") is None
    finally:
        await client.close()
    assert run is not None and run["passed"] is True
    [t] = run["targets"]
    assert (t["model"], t["status"], t["base_url"]) == ("deepseek-chat", "ok", stub.base_url)
    assert_no_canary(repr(run))


def test_plan_for_another_database_is_refused(
    db: Any, cli: Any, stub: ProviderStub, tmp_path: Path
) -> None:
    seed(db, model_config=[snake("deepseek-chat", PROXY, MASTER)])
    plan = write_plan(tmp_path / "plan.yaml", stub.base_url)
    data = yaml.safe_load(plan.read_text())
    data["database"] = "some_other_db"
    plan.write_text(yaml.safe_dump(data))
    r = cli("verify", "--plan", str(plan), "--json", env=KEY_ENV)
    assert r.code == 4, r.stdout + r.stderr
    assert "some_other_db" in r.json()["error"]
