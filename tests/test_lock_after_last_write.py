"""A run killed after its last write, before releasing its lock (issue F).

The kill -9 trials of test_faults.py hit this point by chance (seeded trial 1 kills its
rollback once 22 of 30 entries are restored; a fast rollback often finishes the rest
before the kill lands): the dead run had finished its work and recorded it, so
the operator's re-run found nothing to do, returned before looking at the lock, and the
dead run's lock stayed behind (``status`` kept showing it). Here the real process is
stopped exactly there (the ``cache-clear`` pause point: every MongoDB write and the
ledger are done, the lock is still held) and killed; the re-run must clear the dead
run's lock at once, say so, and leave no lock. A live lock is still never touched.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from layra_migrate.sandbox.servers import Server
from tests.conftest import KEY_ENV, base_env
from tests.rewrite_support import redis_server, wait_for, write_plan

__all__ = ["redis_server"]  # the fixture, imported for pytest

LOCK = "layra_migrate_lock"


def _killed_at_the_cache_clear(
    args: list[str], env: dict[str, str], gate: Path, cwd: Path, db: Any
) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-m", "layra_migrate", *args],
        cwd=cwd,
        env=base_env({**env, "LAYRA_MIGRATE_TEST_PAUSE": f"cache-clear={gate}"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        reached = gate / "cache-clear.reached"
        assert wait_for(lambda: reached.exists() or proc.poll() is not None, 120)
        assert proc.poll() is None, proc.communicate(timeout=30)[1][-3000:]
        # every write done, the lock still this process's: the narrowest kill point
        held = db[LOCK].find_one()
        assert held is not None and held["pid"] == proc.pid, held
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    return proc.pid


@pytest.mark.redis
@pytest.mark.parametrize("command", ["rewrite", "rollback"])
def test_rerun_after_a_kill_between_last_write_and_release_leaves_no_lock(
    command: str,
    seeded_db: Any,
    cli: Any,
    litellm_config: Path,
    mongo_uri: str,
    db_name: str,
    redis_server: Server,
    tmp_path: Path,
) -> None:
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    rewrite = ["rewrite", "--plan", str(plan), "--yes", "--skip-unresolved"]
    if command == "rollback":
        assert cli(*rewrite, env=KEY_ENV).code == 0
    args = rewrite if command == "rewrite" else ["rollback", "--yes"]
    gate = tmp_path / "gate"
    gate.mkdir()
    # the default 60 s lease: the re-run must not wait for it
    env = {"LAYRA_MIGRATE_MONGO_URI": mongo_uri, "LAYRA_MIGRATE_DB": db_name, **KEY_ENV}
    pid = _killed_at_the_cache_clear(
        [*args, "--redis-url", redis_server.uri], env, gate, tmp_path, seeded_db
    )
    st = cli("status", "--json").json()
    assert st["lock"]["pid"] == pid and st["lock"]["holder_gone"], st["lock"]
    state = st["migrations"][0]["state"]
    assert state == ("applied" if command == "rewrite" else "rolled_back")  # work was done

    r = cli(*args, "--json", env=KEY_ENV)
    assert r.code == 0, r.stderr
    assert r.json()["migrations"] == [] or all(
        m["status"] == "already_applied" for m in r.json()["migrations"]
    ), r.json()
    taken = r.json()["lock_taken_over"] or {}
    assert taken.get("pid") == pid, (r.json(), seeded_db[LOCK].find_one())  # said so
    assert seeded_db[LOCK].find_one() is None
    assert cli("status", "--json").json()["lock"] is None


def test_a_run_with_nothing_to_do_never_touches_a_live_lock(
    seeded_db: Any, cli: Any, mongo_uri: str, db_name: str
) -> None:
    """The no-op path clears only a stale lock: a live holder (this process, alive) keeps
    its lock, and the no-op run says nothing about taking it over."""
    import os
    from datetime import timedelta

    from layra_migrate.engine.lock import HostIdentity, now, process_start

    here = HostIdentity.current()
    t = now()
    live = {
        "_id": "layra-migrate",
        "owner": "someone",
        "holder": "ops@here",
        "pid": os.getpid(),
        "host": here.host,
        "boot_id": here.boot_id,
        "pid_ns": here.pid_ns,
        "pid_start": process_start(os.getpid()),
        "command": "rewrite",
        "acquired_at": t,
        "heartbeat_at": t,
        "expires_at": t + timedelta(seconds=120),
    }
    seeded_db[LOCK].insert_one(live)
    r = cli("rollback", "--yes", "--json")  # nothing applied: nothing to roll back
    assert r.code == 0, r.stderr
    assert r.json()["lock_taken_over"] is None
    assert seeded_db[LOCK].find_one()["owner"] == "someone"
