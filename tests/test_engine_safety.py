"""Safety machinery with real processes: lock, kill -9, edited and broken migration files,
check, unlock, new."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from layra_migrate.engine.discovery import default_dir, discover
from layra_migrate.errors import ConfigError
from layra_migrate.sandbox.layra_data import Dataset, build_dataset, seed_database
from tests.conftest import KEY_ENV, assert_no_canary, base_env
from tests.rewrite_support import raw_fingerprint, tool_collections, wait_for, write_plan

FAST_LOCK = {"LAYRA_MIGRATE_LOCK_TTL": "1"}


def _popen(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "layra_migrate", *args],
        cwd=cwd,
        env=base_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _env(mongo_uri: str, db_name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "LAYRA_MIGRATE_MONGO_URI": mongo_uri,
        "LAYRA_MIGRATE_DB": db_name,
        **KEY_ENV,
        **(extra or {}),
    }


def test_concurrent_runs_exactly_one_applies(
    db: Any, db_name: str, mongo_uri: str, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    seed_database(db, build_dataset(users=120, seed=3))
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    args = [
        "rewrite",
        "--plan",
        str(plan),
        "--yes",
        "--skip-unresolved",
        "--json",
        "--batch-size",
        "1",
    ]
    first = _popen(args, _env(mongo_uri, db_name), tmp_path)
    try:
        assert wait_for(lambda: db["layra_migrate_lock"].find_one() is not None, 60)
        second = cli(*args, env=KEY_ENV)
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert second.code == 4, second.stderr
    assert "holds the lock" in second.stderr and "pid" in second.stderr
    assert "@" in second.json()["error"]
    ledger = list(db["layra_migrate_ledger"].find({"direction": "up"}))
    assert [r["status"] for r in ledger] == ["applied"]
    assert_no_canary(out, err, second.stdout, second.stderr)


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_and_rollback_exactly(
    sync_client: Any,
    mongo_uri: str,
    cli: Any,
    litellm_config: Path,
    tmp_path: Path,
    dataset: Dataset,
) -> None:
    # the reference: an uninterrupted run on an identical copy (same _ids)
    import copy

    from bson import ObjectId

    fixed = {
        c: [dict(copy.deepcopy(d), _id=ObjectId()) for d in docs]
        for c, docs in dataset.collections().items()
    }

    def seed(db: Any) -> None:
        for c, docs in fixed.items():
            db[c].insert_many(copy.deepcopy(docs))

    names = []
    try:
        ref_name = f"k_{os.getpid()}_ref"
        names.append(ref_name)
        seed(sync_client[ref_name])
        plan = write_plan(
            lambda *a, **kw: cli(*a, env={**kw.get("env", {}), "LAYRA_MIGRATE_DB": ref_name}),
            litellm_config,
            tmp_path / "plan.yaml",
        )
        data = yaml.safe_load(plan.read_text())
        data["database"] = None  # one plan for every copy
        plan.write_text(yaml.safe_dump(data))
        base = ["--plan", str(plan), "--yes", "--skip-unresolved"]
        r = cli("rewrite", *base, env={**KEY_ENV, "LAYRA_MIGRATE_DB": ref_name})
        assert r.code == 0, r.stderr
        reference = raw_fingerprint(sync_client[ref_name])

        rng = random.Random(20261127)
        for trial in range(3):
            name = f"k_{os.getpid()}_{trial}"
            names.append(name)
            db = sync_client[name]
            seed(db)
            original = raw_fingerprint(db)
            env = _env(mongo_uri, name, FAST_LOCK)
            journaled = rng.randint(1, 60)
            proc = _popen(["rewrite", *base, "--batch-size", str(rng.randint(1, 7))], env, tmp_path)
            wait_for(
                lambda db=db, n=journaled, p=proc: (
                    db["layra_migrate_journal"].estimated_document_count() >= n
                    or p.poll() is not None
                ),
                60,
                interval=0.001,
            )
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            assert proc.returncode == -signal.SIGKILL, "the run finished before the kill"
            assert db["layra_migrate_ledger"].find_one({"direction": "up"})["status"] == "running"
            time.sleep(1.2)  # the dead run's lease expires
            r = cli("rewrite", *base, "--json", env={**env})
            assert r.code == 0, (trial, r.stderr)
            assert raw_fingerprint(db) == reference, trial
            crashed = db["layra_migrate_ledger"].find_one({"direction": "up", "status": "running"})
            assert crashed["settled"] is True  # the dead run's journal entries were settled
            if trial == 2:  # also kill a rollback half way, then finish it
                proc = _popen(["rollback", "--yes", "--batch-size", "2"], env, tmp_path)
                wait_for(
                    lambda db=db, p=proc: (
                        db["layra_migrate_journal"].count_documents({"state": "restored"}) >= 10
                        or p.poll() is not None
                    ),
                    60,
                    interval=0.001,
                )
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=30)
                assert proc.returncode == -signal.SIGKILL
                time.sleep(1.2)
            rb = cli("rollback", "--yes", "--json", env={**env})
            assert rb.code == 0, (trial, rb.stderr)
            assert raw_fingerprint(db) == original, trial
            assert_no_canary(r.stdout, r.stderr, rb.stdout, rb.stderr)
    finally:
        for n in names:
            sync_client.drop_database(n)


def _copy_migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    shutil.copy(default_dir() / "0001_litellm_to_direct.py", folder)
    return folder


def test_edited_applied_migration_is_refused_until_accepted(
    seeded_db: Any, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    folder = _copy_migrations(tmp_path)
    args = [
        "rewrite",
        "--plan",
        str(plan),
        "--yes",
        "--skip-unresolved",
        "--migrations-dir",
        str(folder),
    ]
    assert cli(*args, env=KEY_ENV).code == 0
    with (folder / "0001_litellm_to_direct.py").open("a") as fh:
        fh.write("\n# a harmless edit\n")
    before = raw_fingerprint(seeded_db)
    r = cli(*args, env=KEY_ENV)
    assert r.code == 4 and "0001_litellm_to_direct" in r.stderr and "--accept-changed" in r.stderr
    # the env variable works as well as the flag
    st = cli("status", "--json", env={"LAYRA_MIGRATE_MIGRATIONS_DIR": str(folder)})
    assert st.json()["migrations"][0]["file_changed"] is True
    r = cli(*args, "--accept-changed", "0001", env=KEY_ENV)
    assert r.code == 2  # --reason is required
    r = cli(*args, "--accept-changed", "0001", "--reason", "comment only", env=KEY_ENV)
    assert r.code == 0, r.stderr
    assert raw_fingerprint(seeded_db) == before
    accepted = seeded_db["layra_migrate_ledger"].find_one({"direction": "accept_changed"})
    assert accepted["reason"] == "comment only" and "@" in accepted["by"]
    assert cli(*args, env=KEY_ENV).code == 0
    assert (
        cli("status", "--json", "--migrations-dir", str(folder)).json()["migrations"][0][
            "file_changed"
        ]
        is False
    )


@pytest.mark.parametrize(
    "content,expected",
    [
        ("id = '0001_broken'\ndescription = 'x'\nasync def up(ctx)\n    pass\n", "syntax error"),
        ("id = '0001_broken'\ndescription = 'x'\n", "lacks `async def up(ctx)`"),
        ("id = '0001_broken'\ndescription = 'x'\ndef up(ctx):\n    pass\n", "async def up"),
        ("raise RuntimeError('boom')\n", "failed to import"),
        (
            "id = 'other'\ndescription = 'x'\nasync def up(ctx):\n    pass\n",
            "must be the file name",
        ),
    ],
)
def test_broken_migration_file_exit_2_naming_the_file(
    seeded_db: Any, cli: Any, tmp_path: Path, content: str, expected: str
) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "0001_broken.py").write_text(content)
    for args in (["rewrite", "--plan", "p.yaml", "--yes"], ["status"]):
        r = cli(*args, "--migrations-dir", str(folder))
        assert r.code == 2, r.stderr
        assert "0001_broken.py" in r.stderr and expected in r.stderr, r.stderr
    assert tool_collections(seeded_db) == set()


def test_migration_numbering_is_validated(tmp_path: Path) -> None:
    good = "id = '{}'\ndescription = 'x'\nasync def up(ctx):\n    pass\n"
    (tmp_path / "0001_a.py").write_text(good.format("0001_a"))
    (tmp_path / "0003_c.py").write_text(good.format("0003_c"))
    with pytest.raises(ConfigError, match="0002 is missing"):
        discover(tmp_path)
    (tmp_path / "0003_c.py").rename(tmp_path / "0001_b.py")
    with pytest.raises(ConfigError, match="duplicate"):
        discover(tmp_path)
    (tmp_path / "0001_b.py").unlink()
    (tmp_path / "notes.py").write_text("")
    with pytest.raises(ConfigError, match="NNNN_slug"):
        discover(tmp_path)


def test_new_scaffolds_a_valid_next_file(cli: Any, tmp_path: Path) -> None:
    folder = _copy_migrations(tmp_path)
    r = cli("new", "Point Gemini at Vertex", "--migrations-dir", str(folder), "--json", mongo=False)
    assert r.code == 0, r.stderr
    path = Path(r.json()["path"])
    assert path.name == "0002_point_gemini_at_vertex.py"
    assert "ctx.set_fields" in path.read_text() and "expect=" in path.read_text()
    assert [m.id for m in discover(folder)] == [
        "0001_litellm_to_direct",
        "0002_point_gemini_at_vertex",
    ]


def test_unlock_releases_only_an_expired_lock(db: Any, cli: Any) -> None:
    live = {
        "_id": "layra-migrate",
        "owner": "x",
        "holder": "ops@box",
        "pid": 4242,
        "command": "rewrite",
        "acquired_at": datetime.utcnow(),
        "expires_at": datetime.utcnow() + timedelta(minutes=5),
    }
    db["layra_migrate_lock"].insert_one(live)
    r = cli("unlock", "--if-stale")
    assert r.code == 4 and "ops@box" in r.stderr
    assert db["layra_migrate_lock"].find_one() is not None
    st = cli("status", "--json").json()
    assert st["lock"]["holder"] == "ops@box" and st["lock"]["expired"] is False
    r = cli("rewrite", "--plan", "nope.yaml")
    assert r.code == 2  # the plan is checked first
    db["layra_migrate_lock"].update_one(
        {}, {"$set": {"expires_at": datetime.utcnow() - timedelta(seconds=1)}}
    )
    assert cli("unlock").code == 2  # --if-stale is required
    r = cli("unlock", "--if-stale", "--json")
    assert r.code == 0 and r.json()["released"]["holder"] == "ops@box"
    assert db["layra_migrate_lock"].find_one() is None
    assert cli("unlock", "--if-stale").code == 0


def test_check_proves_reversibility_without_touching_the_database(
    seeded_db: Any, sync_client: Any, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    before = raw_fingerprint(seeded_db)
    dbs_before = set(sync_client.list_database_names())
    r = cli("check", "--plan", str(plan), "--json", env=KEY_ENV)
    assert r.code == 0, r.stderr
    data = r.json()
    assert data["ok"] is True and [s["ok"] for s in data["steps"]] == [True] * 4
    assert data["steps"][0]["documents"] > 0 and data["steps"][3]["documents"] == 0
    assert {b["model_name"] for b in data["blocking"]} >= {"voyage-3"}
    assert raw_fingerprint(seeded_db) == before and tool_collections(seeded_db) == set()
    assert set(sync_client.list_database_names()) <= dbs_before
    # also when the migration is already applied to the real collections
    assert cli("rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", env=KEY_ENV).code == 0
    r2 = cli("check", "--plan", str(plan), env={})  # no keys: placeholders on the scratch copy
    assert r2.code == 0, r2.stderr
    assert "reversible" in r2.stdout
    assert_no_canary(r.stdout, r.stderr, r2.stdout, r2.stderr)


def test_check_fails_on_a_write_that_bypasses_the_journal(
    seeded_db: Any, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    folder = _copy_migrations(tmp_path)
    (folder / "0002_sneaky.py").write_text(
        "id = '0002_sneaky'\ndescription = 'writes behind the journal'\n"
        "async def up(ctx):\n"
        "    await ctx.db.conversations.update_one({}, {'$set': {'sneaky': 1}})\n"
    )
    r = cli("check", "--plan", str(plan), "--migrations-dir", str(folder), "--json", env=KEY_ENV)
    assert r.code == 5, r.stderr
    data = r.json()
    assert data["ok"] is False
    assert data["first_difference"].startswith("conversations _id=")
    assert tool_collections(seeded_db) == set()


def test_ctrl_c_finishes_the_batch_exits_130_and_resumes(
    db: Any, db_name: str, mongo_uri: str, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    seed_database(db, build_dataset(users=120, seed=5))
    original = raw_fingerprint(db)
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    args = ["rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", "--batch-size", "2"]
    proc = _popen(args, _env(mongo_uri, db_name), tmp_path)
    assert wait_for(lambda: db["layra_migrate_journal"].estimated_document_count() >= 20, 60)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert db["layra_migrate_ledger"].find_one({"direction": "up"})["status"] == "interrupted"
    assert db["layra_migrate_lock"].find_one() is None  # released on the way out
    st = cli("status", "--json").json()
    assert st["migrations"][0]["state"] == "interrupted"
    r = cli(*args, "--json", env=KEY_ENV)
    assert r.code == 0, r.stderr
    assert r.json()["migrations"][0]["resumed"] is True
    rb = cli("rollback", "--yes")
    assert rb.code == 0, rb.stderr
    assert raw_fingerprint(db) == original
    assert_no_canary(out, err, r.stdout, r.stderr)


def test_redis_failure_after_the_write_names_the_keys(
    db: Any, db_name: str, mongo_uri: str, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    from layra_migrate.sandbox.servers import start_redis

    server = start_redis(tmp_path / "redis")
    if server is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed (CI=true)")
        pytest.skip("redis-server is not installed")
    try:
        seed_database(db, build_dataset(users=60, seed=9))
        plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
        proc = _popen(
            [
                "rewrite",
                "--plan",
                str(plan),
                "--yes",
                "--skip-unresolved",
                "--json",
                "--batch-size",
                "1",
                "--redis-url",
                server.uri,
            ],
            _env(mongo_uri, db_name),
            tmp_path,
        )
        assert wait_for(lambda: db["layra_migrate_journal"].estimated_document_count() >= 5, 60)
        server.kill()
        out, err = proc.communicate(timeout=120)
    finally:
        server.stop()
    assert proc.returncode == 3, err
    data = __import__("json").loads(out)
    assert data["migrations"][0]["status"] == "applied"
    assert data["redis"]["failed"] and all(
        k.startswith(("conv_model_config:", "model_config:")) for k in data["redis"]["failed"]
    )
    assert data["redis"]["failed"][0] in err


def test_hand_written_down_runs_before_the_journal_replay(
    seeded_db: Any, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    folder = _copy_migrations(tmp_path)
    (folder / "0002_flag_conversations.py").write_text("""
id = "0002_flag_conversations"
description = "mark conversations as read (example with a hand-written down)"

async def up(ctx):
    async for doc in ctx.stream("conversations", {}, {"is_read": 1}):
        await ctx.set_fields("conversations", doc["_id"], {"is_read": False},
                             expect={"is_read": doc.get("is_read", ctx.MISSING)})

async def down(ctx):
    async for doc in ctx.stream("conversations", {"is_read": False}, {"is_read": 1}):
        await ctx.set_fields("conversations", doc["_id"], {"is_read": True},
                             expect={"is_read": False})
""")
    original = raw_fingerprint(seeded_db)
    args = ["--migrations-dir", str(folder)]
    r = cli(
        "rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", "--json", *args, env=KEY_ENV
    )
    assert r.code == 0, r.stderr
    assert [m["status"] for m in r.json()["migrations"]] == ["applied", "applied"]
    assert seeded_db.conversations.count_documents({"is_read": False}) > 0
    rb = cli("rollback", "--yes", "--json", *args)  # the newest only: 0002
    assert rb.code == 0, rb.stderr
    assert [m["id"] for m in rb.json()["migrations"]] == ["0002_flag_conversations"]
    assert seeded_db.conversations.count_documents({"is_read": False}) == 0
    st = {m["id"]: m["state"] for m in cli("status", "--json", *args).json()["migrations"]}
    assert st == {"0001_litellm_to_direct": "applied", "0002_flag_conversations": "rolled_back"}
    rb = cli("rollback", "--yes", "--to", "0001", "--json", *args)
    assert rb.code == 0, rb.stderr
    assert raw_fingerprint(seeded_db) == original
