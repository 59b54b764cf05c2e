"""Layra as it really runs (issue H): its stock ``.env`` and password-protected Redis, the
wrong Redis DB, custom nodes saved with ``$set custom_nodes.<name>`` (a dotted name
nests), Layra's unique-name rule, missing keys, and the dry run as a plan.

Commands run in process (Typer's CliRunner) against the session's real wire server and
a real ``redis-server`` started here with ``--requirepass``; the interrupted-run tests
(signals, kill -9) are in tests/test_layra_recovery.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from layra_migrate.sandbox.layra_data import Dataset
from layra_migrate.sandbox.servers import free_port, wait_port
from tests.conftest import KEY_ENV, assert_no_canary
from tests.rewrite_support import raw_fingerprint, tool_collections

PROXY = "http://litellm-proxy:4000/v1"
# Short, obviously fake; URL-special characters prove the escaping.
REDIS_PASSWORD = "CANARYpass/r@dis:57"
DEEPSEEK = {
    "provider": "deepseek",
    "base_url": "https://api.deepseek.com/v1",
    "model": "deepseek-reasoner",
    "api_key_env": "DEEPSEEK_API_KEY",
}
OPENAI = {
    "provider": "openai",
    "base_url": "https://api.openai.com/v1",
    "model": "gpt-4o-mini",
    "api_key_env": "OPENAI_API_KEY",
}


# -- parts ------------------------------------------------------------------------------------


@dataclass
class PwRedis:
    port: int
    password: str
    proc: subprocess.Popen[bytes]

    def client(self, db: int = 0) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, db=db)

    def url(self, db: int) -> str:
        from urllib.parse import quote

        return f"redis://:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{db}"


@pytest.fixture(scope="module")
def pw_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PwRedis]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    work = tmp_path_factory.mktemp("pwredis")
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
            "--requirepass",
            REDIS_PASSWORD,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_port(port, 15, proc)
        yield PwRedis(port, REDIS_PASSWORD, proc)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def flushed(pw_redis: PwRedis) -> PwRedis:
    pw_redis.client().flushall()
    return pw_redis


def layra_env_file(path: Path, redis: PwRedis) -> Path:
    """Spelled exactly like Layra's stock .env (the Redis and MongoDB blocks), with this
    test's Redis port. MongoDB comes from LAYRA_MIGRATE_MONGO_URI (it wins over the file)."""
    path.write_text(
        "# Redis\n"
        f"REDIS_PASSWORD={redis.password}\n"
        "REDIS_TOKEN_DB=0\n"
        "REDIS_TASK_DB=1\n"
        "REDIS_LOCK_DB=2\n"
        "# MongoDB\n"
        "MONGODB_ROOT_USERNAME=mongouser\n"
        "MONGODB_ROOT_PASSWORD=CANARYpass-mongo577715\n"
        "MONGODB_DB=mongodb\n"
        f"REDIS_URL=127.0.0.1:{redis.port}\n"
        "MONGODB_URL=mongodb:27017\n"
        "MONGODB_POOL_SIZE=100\n"
        "MONGODB_MIN_POOL_SIZE=10\n",
        encoding="utf-8",
    )
    return path


@dataclass
class Res:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)


_CLEARED = (
    "REDIS_URL",
    "REDIS_PASSWORD",
    "REDIS_TOKEN_DB",
    "LAYRA_MIGRATE_REDIS_URL",
    "MONGODB_URL",
    "MONGODB_DB",
    "MONGODB_ROOT_USERNAME",
    "MONGODB_ROOT_PASSWORD",
    "LAYRA_MIGRATE_LITELLM_CONFIG",
    "LAYRA_MIGRATE_MIGRATIONS_DIR",
    "DEEPSEEK_API_KEY",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "OLLAMA_API_KEY",
)


@pytest.fixture
def run(mongo_uri: str, db_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The CLI in process, from an empty folder, against this test's database."""
    from typer.testing import CliRunner

    from layra_migrate.cli import app

    monkeypatch.chdir(tmp_path)

    def _run(*args: str, env: dict[str, str] | None = None) -> Res:
        full: dict[str, str | None] = {k: None for k in _CLEARED}
        full.update(
            {
                "LAYRA_MIGRATE_MONGO_URI": mongo_uri,
                "LAYRA_MIGRATE_DB": db_name,
                "NO_COLOR": "1",
                "COLUMNS": "200",
            }
        )
        full.update(env or {})
        r = CliRunner().invoke(app, list(args), env=full)
        return Res(r.exit_code, r.stdout, r.stderr)

    return _run


def write_plan(path: Path, models: dict[str, Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "format": "layra-migrate/plan/v1",
                "database": None,
                "proxy_urls": [PROXY],
                "models": models,
            }
        )
    )
    return path


def entry(model_id: str, name: str, url: str = PROXY, key: str = "sk-1234") -> dict[str, Any]:
    return {
        "model_id": model_id,
        "model_name": name,
        "model_url": url,
        "api_key": key,
        "base_used": [],
        "system_prompt": "",
        "temperature": -1,
        "max_length": -1,
        "top_P": -1,
        "top_K": -1,
        "score_threshold": -1,
    }


# -- 1. Layra's stock .env for Redis ----------------------------------------------------------


def test_redis_url_is_built_from_layras_variables() -> None:
    from layra_migrate.errors import ConfigError
    from layra_migrate.settings import load_settings

    layra = {
        "REDIS_URL": "redis:6379",
        "REDIS_PASSWORD": REDIS_PASSWORD,
        "REDIS_TOKEN_DB": "0",
        "REDIS_TASK_DB": "1",
        "REDIS_LOCK_DB": "2",
    }
    s = load_settings(environ=layra)
    assert s.redis_url.value == "redis://:CANARYpass%2Fr%40dis%3A57@redis:6379/0"
    assert "REDIS_PASSWORD" in s.redis_url.source and "DB 0" in s.redis_url.source
    assert "CANARYpass" not in s.redis_url.shown()
    # no password: no userinfo
    assert (
        load_settings(environ={"REDIS_URL": "redis:6379"}).redis_url.value == "redis://redis:6379/0"
    )
    # a full URL is used as given; LAYRA_MIGRATE_REDIS_URL and the flag win
    assert load_settings(environ={"REDIS_URL": "redis://h:1/3"}).redis_url.value == "redis://h:1/3"
    mine = {**layra, "LAYRA_MIGRATE_REDIS_URL": "redis://other:6379/0"}
    assert load_settings(environ=mine).redis_url.value == "redis://other:6379/0"
    assert (
        load_settings(environ=mine, redis_url="redis://flag:1/0").redis_url.value
        == "redis://flag:1/0"
    )
    with pytest.raises(ConfigError, match="neither host:port"):
        load_settings(environ={"REDIS_URL": "redis:6379/extra"})


def test_stock_env_audit_dry_run_rewrite_rollback(
    seeded_db: Any,
    dataset: Dataset,
    run: Any,
    litellm_config: Path,
    tmp_path: Path,
    flushed: PwRedis,
) -> None:
    """The issue's "done when": no --redis-url, only Layra's .env; the right keys are
    cleared in the right DB, on rewrite and on rollback."""
    env_file = layra_env_file(tmp_path / ".env.layra", flushed)
    original = raw_fingerprint(seeded_db)
    cache0 = flushed.client(0)
    convs = [d["conversation_id"] for d in dataset.conversations]
    users = [d["username"] for d in dataset.model_config]

    def cache_everything() -> None:
        for cid in convs:
            cache0.set(f"conv_model_config:{cid}", "cached")
        for u in users:
            cache0.set(f"model_config:{u}", "cached")

    cache_everything()
    flushed.client(1).set("conv_model_config:task-db-is-not-the-cache", "stay")
    plan = tmp_path / "plan.yaml"
    a = run(
        "audit",
        "--json",
        "--env-file",
        str(env_file),
        "--litellm-config",
        str(litellm_config),
        "--plan-out",
        str(plan),
        env=KEY_ENV,
    )
    assert a.code == 0, a.stderr
    common = ["--plan", str(plan), "--env-file", str(env_file), "--skip-unresolved"]
    dry = run("rewrite", *common, "--dry-run", "--json", env=KEY_ENV)
    assert dry.code == 0, dry.stderr
    d = dry.json()
    assert d["redis"]["check"]["db"] == 0 and d["redis"]["check"]["keys_here"] > 0
    assert d["redis"]["check"]["wrong_db"] is False and d["summary"]["cache_keys"] > 0
    assert raw_fingerprint(seeded_db) == original and tool_collections(seeded_db) == set()

    r = run("rewrite", *common, "--yes", env=KEY_ENV)
    assert r.code == 0, r.stderr
    assert "deleted," in r.stdout and "were not cached" in r.stdout
    journal = seeded_db["layra_migrate_journal"]
    written = {k for e in journal.find({}) for k in e.get("cache_keys", [])}
    every = {f"conv_model_config:{c}" for c in convs} | {f"model_config:{u}" for u in users}
    assert written and written < every
    assert not any(cache0.exists(k) for k in written)  # the changed documents' keys: gone
    assert all(cache0.exists(k) for k in every - written)  # no other key touched
    assert flushed.client(1).get("conv_model_config:task-db-is-not-the-cache") == b"stay"

    # the app caches migrated configs again; rollback must clear what it restores
    cache_everything()
    rb = run("rollback", "--env-file", str(env_file), "--yes", "--json")
    assert rb.code == 0, rb.stderr
    assert raw_fingerprint(seeded_db) == original
    restored = rb.json()["restored"]
    assert rb.json()["redis"]["deleted"] > 0 and restored > 0
    keys = {k for e in journal.find({"state": "restored"}) for k in e.get("cache_keys", [])}
    assert keys and not any(cache0.exists(k) for k in keys)
    assert_no_canary(
        a.stdout, a.stderr, dry.stdout, dry.stderr, r.stdout, r.stderr, rb.stdout, rb.stderr
    )


# -- 2. the wrong Redis DB --------------------------------------------------------------------


def test_a_redis_db_without_the_cache_is_refused_naming_the_right_one(
    seeded_db: Any,
    dataset: Dataset,
    run: Any,
    litellm_config: Path,
    tmp_path: Path,
    flushed: PwRedis,
) -> None:
    for d in dataset.conversations:
        flushed.client(0).set(f"conv_model_config:{d['conversation_id']}", "cached")
    plan = tmp_path / "plan.yaml"
    assert (
        run(
            "audit",
            "--json",
            "--litellm-config",
            str(litellm_config),
            "--plan-out",
            str(plan),
            env=KEY_ENV,
        ).code
        == 0
    )
    before = raw_fingerprint(seeded_db)
    args = ["rewrite", "--plan", str(plan), "--skip-unresolved", "--redis-url", flushed.url(1)]
    dry = run(*args, "--dry-run", env=KEY_ENV)
    assert dry.code == 4, dry.stderr
    assert "redis_wrong_db" in dry.stdout and "DB 0" in dry.stdout
    assert "->" in dry.stdout  # the diff is still shown beside the blocker
    r = run(*args, "--yes", env=KEY_ENV)
    assert r.code == 4 and "DB 0" in r.stderr and "nothing was written" in r.stderr, r.stderr
    assert raw_fingerprint(seeded_db) == before and tool_collections(seeded_db) == set()
    # rollback checks the DB the same way, its dry run too (reported, exit 4)
    r = run(
        "rewrite",
        "--plan",
        str(plan),
        "--skip-unresolved",
        "--yes",
        "--redis-url",
        flushed.url(0),
        env=KEY_ENV,
    )
    assert r.code == 0, r.stderr
    migrated = raw_fingerprint(seeded_db)
    flushed.client(0).set("model_config:someone", "cached by the app meanwhile")
    rdry = run("rollback", "--dry-run", "--redis-url", flushed.url(1))
    assert rdry.code == 4 and "wrong Redis DB" in rdry.stderr, rdry.stderr
    rb = run("rollback", "--yes", "--redis-url", flushed.url(1))
    assert rb.code == 4 and "DB 0" in rb.stderr, rb.stderr
    assert raw_fingerprint(seeded_db) == migrated
    assert run("rollback", "--yes", "--redis-url", flushed.url(0)).code == 0
    assert raw_fingerprint(seeded_db) == before
    # an empty cache anywhere is no reason to refuse (the app may have been stopped long)
    flushed.client(0).flushall()
    assert run(*args, "--dry-run", env=KEY_ENV).code == 0
    assert_no_canary(dry.stdout, dry.stderr, r.stdout, r.stderr)


# -- 3. custom nodes whose name holds a dot ---------------------------------------------------


def _save_custom_node(db: Any, username: str, name: str, node: dict[str, Any]) -> None:
    """What Layra's NodeRepository.update_custom_nodes does."""
    db.nodes.update_one(
        {"username": username},
        {"$set": {f"custom_nodes.{name}": node}, "$setOnInsert": {"username": username}},
        upsert=True,
    )


def _llm_node(url: str = PROXY) -> dict[str, Any]:
    return {
        "id": "node_1",
        "type": "custom",
        "position": {"x": 1, "y": 2},
        "data": {
            "label": "LLM",
            "nodeType": "vlm",
            "modelConfig": {
                "modelId": "m1",
                "modelName": "deepseek-reasoner",
                "modelURL": url,
                "apiKey": "sk-1234",
                "useTemperatureDefault": True,
            },
        },
    }


def test_dotted_custom_node_names_are_found_rewritten_and_rolled_back(
    db: Any, run: Any, tmp_path: Path, mongo_uri: str
) -> None:
    from layra_migrate.locations import NODE_DEPTH

    _save_custom_node(db, "alice", "gpt-4.1-helper", _llm_node())
    _save_custom_node(db, "alice", "plain", _llm_node())
    _save_custom_node(db, "alice", "v1.2.3", _llm_node())
    deep = ".".join(f"l{i}" for i in range(NODE_DEPTH + 1))
    _save_custom_node(db, "bob", deep, _llm_node())
    stored = db.nodes.find_one({"username": "alice"})["custom_nodes"]
    assert "1-helper" in stored["gpt-4"]  # MongoDB nested the dotted name
    original = raw_fingerprint(db)

    a = run("audit", "--json")
    assert a.code == 0, a.stderr
    rep = a.json()
    assert rep["locations"]["custom_nodes"]["via_proxy"] == 3
    unrec = [an for an in rep["anomalies"] if an["kind"] == "unrecognised_model_config"]
    assert unrec and any(f"custom_nodes.{deep}.data.modelConfig" in p for p in unrec[0]["paths"])
    assert rep["unrecognised_via_proxy"] == 1

    plan = write_plan(tmp_path / "plan.yaml", {"deepseek-reasoner": {"target": DEEPSEEK}})
    r = run("rewrite", "--plan", str(plan), "--yes", "--json", env=KEY_ENV)
    assert r.code == 0, r.stderr
    doc = db.nodes.find_one({"username": "alice"})["custom_nodes"]
    for node in (doc["gpt-4"]["1-helper"], doc["plain"], doc["v1"]["2"]["3"]):
        cfg = node["data"]["modelConfig"]
        assert cfg["modelURL"] == DEEPSEEK["base_url"]
        assert cfg["apiKey"] == KEY_ENV["DEEPSEEK_API_KEY"]
        assert set(cfg) == {"modelId", "modelName", "modelURL", "apiKey", "useTemperatureDefault"}
    assert set(doc) == {"gpt-4", "plain", "v1"}  # no flattened "gpt-4.1-helper" key added
    after = run("audit", "--json").json()
    assert after["locations"]["custom_nodes"]["via_proxy"] == 0
    assert after["unrecognised_via_proxy"] == 1  # the too-deep node: reported, not missed

    # the decommission interlock counts what the walk cannot rewrite
    import asyncio

    from pymongo import AsyncMongoClient

    from layra_migrate.decommission.interlock import count_references
    from layra_migrate.settings import Environment

    async def interlock() -> Any:
        client: Any = AsyncMongoClient(mongo_uri)
        try:
            return await count_references(client[db.name], Environment({}))
        finally:
            await client.close()

    lock = asyncio.run(interlock())
    assert lock.via_proxy == 1 and lock.by_location.get("unrecognised") == 1
    assert any(deep in w for w in lock.warnings)

    rb = run("rollback", "--yes")
    assert rb.code == 0, rb.stderr
    assert raw_fingerprint(db) == original


# -- 4. Layra's unique-name rule --------------------------------------------------------------


@pytest.fixture
def duplicate_data(db: Any) -> Any:
    db.model_config.insert_many(
        [
            {
                "username": "alice",
                "selected_model": "a-direct",
                "models": [
                    entry(
                        "a-direct", "gpt-4o-mini", "https://api.openai.com/v1", "sk-CANARYdirect1"
                    ),
                    entry("a-proxied", "openai/gpt-4o-mini"),
                ],
            },
            {
                "username": "bob",
                "selected_model": "b-proxied",
                "models": [entry("b-proxied", "openai/gpt-4o-mini")],
            },
        ]
    )
    return db


def _model(db: Any, user: str, model_id: str) -> dict[str, Any]:
    doc = db.model_config.find_one({"username": user})
    return next(m for m in doc["models"] if m["model_id"] == model_id)


def test_a_rename_that_duplicates_a_users_model_name_is_blocking(
    duplicate_data: Any, run: Any, tmp_path: Path
) -> None:
    db = duplicate_data
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "model_list:\n  - model_name: openai/gpt-4o-mini\n    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n      api_key: os.environ/OPENAI_API_KEY\n"
    )
    a = run(
        "audit",
        "--json",
        "--litellm-config",
        str(cfg),
        "--plan-out",
        str(tmp_path / "audit-plan.yaml"),
        env=KEY_ENV,
    )
    assert a.code == 0, a.stderr
    dups = a.json()["duplicates"]
    assert [(d["user"], d["model_id"], d["other_model_ids"]) for d in dups] == [
        ("alice", "a-proxied", ["a-direct"])
    ]
    assert a.json()["blocking"] == 1
    human = run("audit", "--litellm-config", str(cfg), env=KEY_ENV)
    assert "a-proxied" in human.stdout and "a-direct" in human.stdout

    plan = write_plan(tmp_path / "plan.yaml", {"openai/gpt-4o-mini": {"target": OPENAI}})
    before = raw_fingerprint(db)
    dry = run("rewrite", "--plan", str(plan), "--dry-run", "--json", env=KEY_ENV)
    assert dry.code == 4, dry.stderr
    blockers = dry.json()["blockers"]
    assert [b["kind"] for b in blockers] == ["duplicate_name"]
    assert blockers[0]["duplicates"][0]["model_id"] == "a-proxied"
    assert {c["doc_id"] for c in dry.json()["changes"]} == {
        str(db.model_config.find_one({"username": "bob"})["_id"])
    }  # bob's diff is shown
    r = run("rewrite", "--plan", str(plan), "--yes", env=KEY_ENV)
    assert r.code == 4 and "duplicate model_name" in r.stderr, r.stderr
    assert raw_fingerprint(db) == before

    # --skip-unresolved: alice's proxied entry stays on the proxy and is listed
    r = run("rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", "--json", env=KEY_ENV)
    assert r.code == 0, r.stderr
    assert [s["kind"] for s in r.json()["skipped"]] == ["duplicate_name"]
    assert _model(db, "alice", "a-proxied")["model_url"] == PROXY
    assert _model(db, "bob", "b-proxied")["model_name"] == "gpt-4o-mini"
    assert run("rollback", "--yes").code == 0
    assert raw_fingerprint(db) == before

    # the plan names the entry to keep as it is: not blocking, left alone
    keep = write_plan(
        tmp_path / "keep.yaml", {"openai/gpt-4o-mini": {"target": OPENAI, "keep": ["a-proxied"]}}
    )
    r = run("rewrite", "--plan", str(keep), "--yes", "--json", env=KEY_ENV)
    assert r.code == 0, r.stderr
    assert [d["resolution"] for d in r.json()["preflight"]["duplicates"]] == ["kept"]
    assert _model(db, "alice", "a-proxied")["model_url"] == PROXY
    assert run("rollback", "--yes").code == 0

    # or allows the duplicate explicitly
    allow = write_plan(
        tmp_path / "allow.yaml",
        {"openai/gpt-4o-mini": {"target": OPENAI, "allow_duplicate_name": True}},
    )
    r = run("rewrite", "--plan", str(allow), "--yes", "--json", env=KEY_ENV)
    assert r.code == 0, r.stderr
    assert _model(db, "alice", "a-proxied")["model_name"] == "gpt-4o-mini"
    assert _model(db, "alice", "a-proxied")["model_url"] == OPENAI["base_url"]
    assert run("rollback", "--yes").code == 0
    assert raw_fingerprint(db) == before
    assert_no_canary(a.stdout, human.stdout, dry.stdout, r.stdout, r.stderr)


# -- 5. missing keys, and the dry run as a plan -----------------------------------------------


def test_a_missing_key_blocks_like_an_unresolved_name_and_the_dry_run_shows_everything(
    db: Any, run: Any, tmp_path: Path
) -> None:
    db.model_config.insert_many(
        [
            {
                "username": f"u{i}",
                "selected_model": f"m{i}",
                "models": [entry(f"d{i}", "deepseek-reasoner"), entry(f"o{i}", "gpt-4o-mini")],
            }
            for i in range(3)
        ]
    )
    plan = write_plan(
        tmp_path / "plan.yaml",
        {"deepseek-reasoner": {"target": DEEPSEEK}, "gpt-4o-mini": {"target": OPENAI}},
    )
    no_deepseek = {k: v for k, v in KEY_ENV.items() if k != "DEEPSEEK_API_KEY"}
    before = raw_fingerprint(db)
    out = tmp_path / "review" / "plan.json"
    dry = run("rewrite", "--plan", str(plan), "--dry-run", "--out", str(out), env=no_deepseek)
    assert dry.code == 4, dry.stderr
    assert "[key_missing]" in dry.stdout and "DEEPSEEK_API_KEY is not set" in dry.stdout
    head, _, rest = dry.stdout.partition("Blockers (")
    assert "Changes by place" in head and "Changes by model" in head  # summary first
    assert "model gpt-4o-mini" in rest and "->" in rest  # then the diff
    assert "would be refused (exit 4)" in dry.stdout
    saved = json.loads(out.read_text())
    assert saved["schema"] == "layra-migrate/rewrite-plan/v1"
    assert saved["summary"]["by_place"]["model_config"] == {
        "documents": 3,
        "references": 3,
        "fields": 6,
    }
    assert saved["blockers"][0]["kind"] == "key_missing"
    keys = [c for g in saved["diff"] for c in g["changes"] if c["field"].endswith("api_key")]
    assert keys and all("..." in c["after"] for c in keys)
    summary = run("rewrite", "--plan", str(plan), "--dry-run", "--summary", env=no_deepseek)
    assert summary.code == 4 and "->" not in summary.stdout and "[key_missing]" in summary.stdout
    assert raw_fingerprint(db) == before and tool_collections(db) == set()

    r = run("rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", "--json", env=no_deepseek)
    assert r.code == 0, r.stderr
    assert [(s["model_name"], s["kind"]) for s in r.json()["skipped"]] == [
        ("deepseek-reasoner", "key_missing")
    ]
    for i in range(3):
        assert _model(db, f"u{i}", f"d{i}")["model_url"] == PROXY
        assert _model(db, f"u{i}", f"o{i}")["model_url"] == OPENAI["base_url"]
    ok = run("rewrite", "--plan", str(plan), "--dry-run", env=KEY_ENV)
    assert ok.code == 0 and "would proceed (exit 0)" in ok.stdout
    assert_no_canary(dry.stdout, dry.stderr, out.read_text(), summary.stdout, r.stdout, ok.stdout)
