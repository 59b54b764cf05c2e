"""`rewrite` / `rollback` / `status` end to end: real CLI, real wire server, real redis-server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from layra_migrate.sandbox.layra_data import Dataset
from tests.conftest import KEY_ENV, assert_no_canary
from tests.rewrite_support import (  # noqa: F401  (fixtures)
    raw_fingerprint,
    redis_client,
    redis_server,
    tool_collections,
    write_plan,
)

MIGRATED_LEAVES = {"model_url", "modelURL", "api_key", "apiKey", "model_name", "modelName"}


def _leaves(doc: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(doc, dict):
        if not doc and prefix:
            out[prefix] = {}
        for k, v in doc.items():
            out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(doc, list):
        if not doc:
            out[prefix] = []
        for i, v in enumerate(doc):
            out.update(_leaves(v, f"{prefix}.{i}"))
    else:
        out[prefix] = doc
    return out


def _snapshot(db: Any) -> dict[str, dict[Any, dict[str, Any]]]:
    return {
        name: {d["_id"]: _leaves(d) for d in db[name].find({})}
        for name in ("model_config", "conversations", "workflows", "nodes")
    }


def _resolvable(plan: Path) -> set[str]:
    data = yaml.safe_load(plan.read_text())
    return {n for n, e in data["models"].items() if e.get("target")}


def test_dry_run_shows_every_change_and_writes_nothing(
    seeded_db: Any, dataset: Dataset, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    before = raw_fingerprint(seeded_db)
    r = cli("rewrite", "--plan", str(plan), "--dry-run", "--skip-unresolved", "--json", env=KEY_ENV)
    assert r.code == 0, r.stderr
    data = r.json()
    assert data["schema"] == "layra-migrate/rewrite/v1" and data["dry_run"] is True
    # one URL change per resolvable proxied reference, in every location
    resolvable = _resolvable(plan)
    exp = dataset.expected
    url_changes: dict[str, int] = {}
    for c in data["changes"]:
        if c["field"].endswith((".model_url", ".modelURL")):
            url_changes[c["location"]] = url_changes.get(c["location"], 0) + 1
    want = {
        loc: sum(exp.by_name[n][loc] for n in resolvable if n in exp.by_name)
        for loc in ("model_config", "conversations", "workflows", "custom_nodes")
    }
    # entries whose rename would give a user two models with one name stay on the proxy
    held = sum(1 for d in data["duplicates"] if d["resolution"] == "blocking")
    assert held == 2  # the generated data holds two such users
    want["model_config"] -= held
    assert url_changes == {k: v for k, v in want.items() if v}
    keys = [c for c in data["changes"] if c["field"].endswith((".api_key", ".apiKey"))]
    assert keys and all(
        c["after"] is None or "..." in c["after"] or c["after"] == "****" for c in keys
    )
    assert raw_fingerprint(seeded_db) == before
    assert tool_collections(seeded_db) == set()
    # human output: grouped, masked, nothing written either
    r2 = cli("rewrite", "--plan", str(plan), "--dry-run", "--skip-unresolved", env=KEY_ENV)
    assert r2.code == 0, r2.stderr
    assert "conversations" in r2.stdout and "->" in r2.stdout
    assert raw_fingerprint(seeded_db) == before and tool_collections(seeded_db) == set()
    assert_no_canary(r.stdout, r.stderr, r2.stdout, r2.stderr)


def test_unknown_option_is_an_error(seeded_db: Any, cli: Any) -> None:
    r = cli("rewrite", "--dryrun", "--yes")
    assert r.code == 2
    assert tool_collections(seeded_db) == set()


def test_refusals_write_nothing(
    seeded_db: Any, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    before = raw_fingerprint(seeded_db)
    # blocking names without --skip-unresolved
    r = cli("rewrite", "--plan", str(plan), "--yes", env=KEY_ENV)
    assert r.code == 4, r.stderr
    assert "voyage-3" in r.stderr and "nothing was written" in r.stderr
    # stale plan: a proxied name the plan does not cover
    data = yaml.safe_load(plan.read_text())
    del data["models"]["deepseek-chat"]
    stale = tmp_path / "stale.yaml"
    stale.write_text(yaml.safe_dump(data))
    r = cli("rewrite", "--plan", str(stale), "--yes", "--skip-unresolved", env=KEY_ENV)
    assert r.code == 4 and "stale plan" in r.stderr, r.stderr
    # a key variable missing for a target about to be written blocks like an unresolved
    # name (with --skip-unresolved it would stay on the proxy: tests/test_layra_real.py)
    env = {k: v for k, v in KEY_ENV.items() if k != "DEEPSEEK_API_KEY"}
    r = cli("rewrite", "--plan", str(plan), "--yes", "--json", env=env)
    assert r.code == 4 and "DEEPSEEK_API_KEY is not set" in r.json()["error"], r.stdout
    # non-interactive without --yes
    r = cli("rewrite", "--plan", str(plan), "--skip-unresolved", env=KEY_ENV)
    assert r.code == 2 and "--yes" in r.stderr
    # unreachable Redis: exit 3 before any MongoDB write
    r = cli(
        "rewrite",
        "--plan",
        str(plan),
        "--yes",
        "--skip-unresolved",
        "--redis-url",
        "redis://127.0.0.1:1/0",
        env=KEY_ENV,
    )
    assert r.code == 3 and "Redis" in r.stderr, r.stderr
    assert raw_fingerprint(seeded_db) == before
    assert tool_collections(seeded_db) == set()


def test_rewrite_changes_only_migrated_fields_then_rollback_is_exact(
    seeded_db: Any,
    dataset: Dataset,
    cli: Any,
    litellm_config: Path,
    tmp_path: Path,
    redis_client: Any,  # noqa: F811 (fixtures)
    redis_server: Any,  # noqa: F811 (fixtures)
) -> None:
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    original = raw_fingerprint(seeded_db)
    snap = _snapshot(seeded_db)
    convs = [d["conversation_id"] for d in dataset.conversations]
    users = [d["username"] for d in dataset.model_config]
    for cid in convs:
        redis_client.set(f"conv_model_config:{cid}", "cached")
    for u in users:
        redis_client.set(f"model_config:{u}", "cached")
    redis_client.set("unrelated:key", "stay")

    r = cli(
        "rewrite",
        "--plan",
        str(plan),
        "--yes",
        "--skip-unresolved",
        "--json",
        "--redis-url",
        redis_server.uri,
        "--batch-size",
        "37",
        env=KEY_ENV,
    )
    assert r.code == 0, r.stderr
    data = r.json()
    assert data["migrations"][0]["status"] == "applied"
    changed_docs = data["migrations"][0]["documents"]
    assert changed_docs > 0

    after = _snapshot(seeded_db)
    changed_convs: set[str] = set()
    changed_users: set[str] = set()
    for name, docs in snap.items():
        assert set(after[name]) == set(docs), name
        for doc_id, leaves in docs.items():
            new = after[name][doc_id]
            assert set(new) == set(leaves), f"fields added or removed in {name} {doc_id}"
            diff = {p for p in leaves if leaves[p] != new[p] or type(leaves[p]) is not type(new[p])}
            assert all(p.rsplit(".", 1)[-1] in MIGRATED_LEAVES for p in diff), diff
            if diff and name == "conversations":
                changed_convs.add(
                    seeded_db.conversations.find_one({"_id": doc_id})["conversation_id"]
                )
            if diff and name == "model_config":
                changed_users.add(seeded_db.model_config.find_one({"_id": doc_id})["username"])
    # the audit: only unresolved names (and entries held back as duplicate names) still
    # use the proxy
    a = cli("audit", "--json", "--litellm-config", str(litellm_config), env=KEY_ENV).json()
    held = {
        d["model_name"] for d in data["preflight"]["duplicates"] if d["resolution"] == "blocking"
    }
    assert {m["model_name"] for m in a["models"]} <= (
        set(yaml.safe_load(plan.read_text())["models"]) - _resolvable(plan)
    ) | held
    # Redis: exactly the changed documents' keys are gone
    for cid in convs:
        assert bool(redis_client.exists(f"conv_model_config:{cid}")) == (cid not in changed_convs)
    for u in users:
        assert bool(redis_client.exists(f"model_config:{u}")) == (u not in changed_users)
    assert redis_client.get("unrelated:key") == b"stay"
    assert data["redis"]["deleted"] == len(changed_convs) + len(changed_users)

    # a second run is a no-op
    migrated = raw_fingerprint(seeded_db)
    r2 = cli("rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", "--json", env=KEY_ENV)
    assert r2.code == 0, r2.stderr
    assert r2.json()["documents"] == 0
    assert r2.json()["migrations"][0]["status"] == "already_applied"
    assert raw_fingerprint(seeded_db) == migrated

    st = cli("status", "--json")
    assert st.code == 0, st.stderr
    row = st.json()["migrations"][0]
    assert row["state"] == "applied" and row["applied"]["counts"]["documents"] == changed_docs
    assert "@" in row["applied"]["by"] and st.json()["lock"] is None

    rb = cli("rollback", "--yes", "--json", "--redis-url", redis_server.uri)
    assert rb.code == 0, rb.stderr
    assert rb.json()["restored"] == changed_docs and rb.json()["conflict_count"] == 0
    assert raw_fingerprint(seeded_db) == original
    st = cli("status", "--json").json()
    assert st["migrations"][0]["state"] == "rolled_back"
    human = cli("status")
    assert human.code == 0 and "rolled_back" in human.stdout
    assert_no_canary(
        r.stdout,
        r.stderr,
        r2.stdout,
        r2.stderr,
        rb.stdout,
        rb.stderr,
        st.__repr__(),
        human.stdout,
        human.stderr,
    )
    # nothing secret in the ledger, lock or journal beyond the before-images it must hold
    ledger = list(seeded_db["layra_migrate_ledger"].find({}))
    assert_no_canary(repr(ledger))


def test_conflicts_are_left_alone_then_forced(
    seeded_db: Any, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    original_docs = {d["_id"]: d for d in seeded_db.conversations.find({})}
    r = cli("rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", env=KEY_ENV)
    assert r.code == 0, r.stderr
    journal = list(seeded_db["layra_migrate_journal"].find({"collection": "conversations"}))
    assert len(journal) >= 2
    conflict_id, edited_id = journal[0]["doc_id"], journal[1]["doc_id"]
    # the app edits a migrated field of one conversation, an untouched field of another
    seeded_db.conversations.update_one(
        {"_id": conflict_id}, {"$set": {"model_config.model_url": "https://edited/v1"}}
    )
    seeded_db.conversations.update_one(
        {"_id": edited_id}, {"$set": {"model_config.temperature": 0.42}}
    )
    rb = cli("rollback", "--yes", "--json")
    assert rb.code == 6, rb.stderr
    data = rb.json()
    assert data["conflict_count"] == 1
    assert data["conflicts"][0]["doc_id"] == str(conflict_id)
    assert data["migrations"][0]["status"] == "partially_rolled_back"
    assert (
        seeded_db.conversations.find_one({"_id": conflict_id})["model_config"]["model_url"]
        == "https://edited/v1"
    )
    edited = seeded_db.conversations.find_one({"_id": edited_id})
    assert edited["model_config"]["temperature"] == 0.42  # the app's change survives
    want = dict(original_docs[edited_id]["model_config"], temperature=0.42)
    assert edited["model_config"] == want  # and the migrated fields are restored
    for doc_id, doc in original_docs.items():
        if doc_id not in (conflict_id, edited_id):
            assert seeded_db.conversations.find_one({"_id": doc_id}) == doc
    st = cli("status", "--json").json()
    assert st["migrations"][0]["state"] == "partially_rolled_back"
    human = cli("rollback", "--yes")
    assert human.code == 6 and str(conflict_id) in human.stdout
    forced = cli("rollback", "--yes", "--force", "--json")
    assert forced.code == 0, forced.stderr
    assert seeded_db.conversations.find_one({"_id": conflict_id}) == original_docs[conflict_id]
    assert cli("status", "--json").json()["migrations"][0]["state"] == "rolled_back"
    assert_no_canary(rb.stdout, rb.stderr, human.stdout, forced.stdout)


def test_rollback_dry_run_writes_nothing(
    seeded_db: Any, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    assert cli("rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", env=KEY_ENV).code == 0
    migrated = raw_fingerprint(seeded_db)
    journal = list(seeded_db["layra_migrate_journal"].find({}))
    r = cli("rollback", "--dry-run", "--json")
    assert r.code == 0, r.stderr
    assert r.json()["restored"] == len(journal) and r.json()["restores"]
    assert raw_fingerprint(seeded_db) == migrated
    assert list(seeded_db["layra_migrate_journal"].find({})) == journal
    assert_no_canary(r.stdout, r.stderr)
