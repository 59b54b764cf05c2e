"""Interrupted runs as operators meet them (issue H, items 6 and 7): real processes killed
with SIGTERM or kill -9, a real redis-server holding Layra's cache, an immediate re-run.

- The cache keys of every document a rollback (or rewrite) changed are cleared, by the
  interrupted run itself when it can, and otherwise by the next run (the journal keeps
  which documents still need it).
- A lock whose holder died on this host is taken over at once, and the run says so;
  across hosts, and while the holder lives, the lease rule stays.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from layra_migrate.sandbox.layra_data import Dataset
from tests.conftest import KEY_ENV, assert_no_canary, base_env
from tests.rewrite_support import (  # noqa: F401  (fixtures)
    raw_fingerprint,
    redis_client,
    redis_server,
    wait_for,
    write_plan,
)

JOURNAL = "layra_migrate_journal"
LOCK = "layra_migrate_lock"


def _popen(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "layra_migrate", *args],
        cwd=cwd,
        env=base_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _keys(db: Any, states: list[str]) -> set[str]:
    return {
        k
        for e in db[JOURNAL].find({"state": {"$in": states}}, {"cache_keys": 1})
        for k in e.get("cache_keys") or []
    }


def _restored_with_keys(db: Any) -> int:
    # rollback replays newest first: workflow and node entries (no cache keys) come first
    return int(
        db[JOURNAL].count_documents({"state": "restored", "cache_keys.0": {"$exists": True}})
    )


def test_interrupted_rewrite_and_rollback_clear_every_changed_documents_keys(
    seeded_db: Any,
    dataset: Dataset,
    cli: Any,
    litellm_config: Path,
    tmp_path: Path,
    redis_client: Any,  # noqa: F811 (fixture)
    redis_server: Any,  # noqa: F811 (fixture)
    mongo_uri: str,
) -> None:
    db = seeded_db
    original = raw_fingerprint(db)
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    env = {"LAYRA_MIGRATE_MONGO_URI": mongo_uri, "LAYRA_MIGRATE_DB": db.name, **KEY_ENV}
    every = {f"conv_model_config:{d['conversation_id']}" for d in dataset.conversations} | {
        f"model_config:{d['username']}" for d in dataset.model_config
    }

    def cache_everything() -> None:
        for k in every:
            redis_client.set(k, "cached")

    redis = ["--redis-url", redis_server.uri]
    rewrite = ["rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", *redis]

    # rewrite killed -9 mid-run (its in-memory key list dies with it); the re-run clears
    # the keys of the documents the dead run wrote too
    cache_everything()
    proc = _popen([*rewrite, "--batch-size", "1"], env, tmp_path)
    assert wait_for(
        lambda: db[JOURNAL].estimated_document_count() >= 4 or proc.poll() is not None,
        60,
        interval=0.002,
    )
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before the kill"
    dead_written = _keys(db, ["written", "applied"])
    assert dead_written and all(redis_client.exists(k) for k in dead_written)
    r = cli(*rewrite, "--json", env=KEY_ENV)
    assert r.code == 0, r.stderr
    assert r.json()["documents"] > 10
    written = _keys(db, ["written", "applied"])
    missing = dead_written - written
    assert not missing
    assert not any(redis_client.exists(k) for k in written)
    assert all(redis_client.exists(k) for k in every - written)

    # rollback stopped by SIGTERM: the run clears the keys of what it restored
    cache_everything()
    proc = _popen(["rollback", "--yes", "--batch-size", "1", *redis], env, tmp_path)
    assert wait_for(
        lambda: _restored_with_keys(db) >= 3 or proc.poll() is not None, 60, interval=0.002
    )
    at_signal = _restored_with_keys(db)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (at_signal, err[-3000:])
    restored = _keys(db, ["restored"])
    assert restored and not any(redis_client.exists(k) for k in restored)
    assert all(redis_client.exists(k) for k in every - restored)

    # rollback killed -9: its restored documents' keys survive it; the immediate re-run
    # (no waiting for the lease) clears them with the rest. (The app caches the migrated
    # values of the documents not restored yet; the restored ones were cleared above.)
    for k in every - restored:
        redis_client.set(k, "cached")
    before_kill = _restored_with_keys(db)
    proc = _popen(["rollback", "--yes", "--batch-size", "1", *redis], env, tmp_path)
    assert wait_for(
        lambda: _restored_with_keys(db) >= before_kill + 3 or proc.poll() is not None,
        60,
        interval=0.002,
    )
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before the kill"
    stale = _keys(db, ["restored"])
    assert any(redis_client.exists(k) for k in stale)  # what the issue saw
    rb = cli("rollback", "--yes", "--json", *redis, env=KEY_ENV)
    assert rb.code == 0, rb.stderr
    assert "took over" in rb.stderr or rb.json()["lock_taken_over"] is not None
    assert raw_fingerprint(db) == original
    assert not any(redis_client.exists(k) for k in _keys(db, ["restored"]))
    assert_no_canary(r.stdout, r.stderr, out, err, rb.stdout, rb.stderr)


def test_kill_9_then_an_immediate_rerun_takes_the_dead_runs_lock_over(
    seeded_db: Any, cli: Any, litellm_config: Path, tmp_path: Path, mongo_uri: str
) -> None:
    db = seeded_db
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    env = {"LAYRA_MIGRATE_MONGO_URI": mongo_uri, "LAYRA_MIGRATE_DB": db.name, **KEY_ENV}
    rewrite = ["rewrite", "--plan", str(plan), "--yes", "--skip-unresolved"]
    proc = _popen([*rewrite, "--batch-size", "1"], env, tmp_path)  # default 60 s lease
    assert wait_for(
        lambda: db[JOURNAL].estimated_document_count() >= 3 or proc.poll() is not None,
        60,
        interval=0.002,
    )
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before the kill"
    held = db[LOCK].find_one()
    assert held["pid"] == proc.pid and held["host"] and held["pid_start"] is not None
    st = cli("status", "--json").json()["lock"]
    assert st["pid"] == proc.pid and "is not running" in st["holder_gone"]
    r = cli(*rewrite, env=KEY_ENV)
    assert r.code == 0, r.stderr
    assert "took over the lock of a run that is gone" in r.stderr
    assert f"pid {proc.pid} is not running" in r.stderr
    assert db[LOCK].find_one() is None


def test_the_lease_rule_stays_for_live_holders_and_other_hosts(db: Any, mongo_uri: str) -> None:
    """Driven in process: a lock document as a holder elsewhere would leave it."""
    from pymongo import AsyncMongoClient

    from layra_migrate.engine.lock import (
        LOCK_ID,
        HostIdentity,
        LeaseLock,
        now,
        process_start,
    )
    from layra_migrate.errors import RefusedError

    here = HostIdentity.current()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        live_start = process_start(sleeper.pid)
        assert live_start is not None

        def lock_doc(**kw: Any) -> dict[str, Any]:
            t = now()
            from datetime import timedelta

            return {
                "_id": LOCK_ID,
                "owner": "other-run",
                "holder": "ops@elsewhere",
                "pid": sleeper.pid,
                "command": "rewrite",
                "host": here.host,
                "boot_id": here.boot_id,
                "pid_ns": here.pid_ns,
                "pid_start": live_start,
                "acquired_at": t,
                "heartbeat_at": t,
                "expires_at": t + timedelta(60),
                **kw,
            }

        async def attempt(doc: dict[str, Any]) -> Any:
            client: Any = AsyncMongoClient(mongo_uri)
            try:
                coll = client[db.name]["layra_migrate_lock"]
                await coll.delete_many({})
                await coll.insert_one(doc)
                lock = LeaseLock(client[db.name], "rewrite")
                try:
                    async with lock:
                        return lock.took_over
                except RefusedError as exc:
                    return exc
            finally:
                await client.close()

        # the holder lives on this host: refused
        assert isinstance(asyncio.run(attempt(lock_doc())), RefusedError)
        # the same pid now belongs to another process (start time differs): stale at once
        took = asyncio.run(attempt(lock_doc(pid_start=live_start + 1)))
        assert not isinstance(took, RefusedError) and "another process" in took.stale_reason
        # a dead pid on this host: stale at once
        dead = subprocess.Popen(["true"])
        dead.wait()
        took = asyncio.run(attempt(lock_doc(pid=dead.pid)))
        assert not isinstance(took, RefusedError) and "not running" in took.stale_reason
        # another host (or another PID namespace: a container): the lease rule stays
        for other in ({"host": "another-host"}, {"pid_ns": "pid:[1]"}, {"boot_id": "x"}):
            got = asyncio.run(attempt(lock_doc(pid=dead.pid, **other)))
            assert isinstance(got, RefusedError) and "live" in got.message, other
        # a lock written before these fields existed: the lease rule stays
        legacy = {
            k: v
            for k, v in lock_doc(pid=dead.pid).items()
            if k not in ("host", "boot_id", "pid_ns", "pid_start")
        }
        assert isinstance(asyncio.run(attempt(legacy)), RefusedError)
        assert os.getpid() > 0
    finally:
        sleeper.kill()
        sleeper.wait()
