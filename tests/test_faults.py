"""Fault injection against real processes and real servers (issue F).

kill -9 of ``rewrite`` and ``rollback`` at seeded random points, the MongoDB
server stopped mid-run, Redis stopped between the MongoDB write and the cache
clear, two and five concurrent ``rewrite`` processes, SIGTERM and Ctrl-C in
each phase. After every fault the state must be resumable by simply running the
command again (at most after the dead run's lease expires): never ``unlock``,
never a manual repair. test_engine_safety.py has the first three kill -9 trials,
the two-process race and Ctrl-C during ``rewrite``; this module extends them.
"""

from __future__ import annotations

import copy
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from layra_migrate.sandbox.layra_data import build_dataset
from layra_migrate.sandbox.servers import Server, free_port, start_mongo, start_redis
from tests.conftest import KEY_ENV, CliResult, assert_no_canary, base_env, run_cli
from tests.rewrite_support import raw_fingerprint, wait_for, write_plan

pytestmark = pytest.mark.slow

TTL = "1"  # seconds: a killed run's lease expires quickly
JOURNAL = "layra_migrate_journal"
LEDGER = "layra_migrate_ledger"
LOCK = "layra_migrate_lock"
LIVE_STATES = ("written", "applied")  # entries that still hold an undo


def _popen(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "layra_migrate", *args],
        cwd=cwd,
        env=base_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _env(uri: str, name: str, **extra: str) -> dict[str, str]:
    # PYTHONFAULTHANDLER: a hung process dumps its stacks on SIGABRT (see _communicate)
    return {
        "LAYRA_MIGRATE_MONGO_URI": uri,
        "LAYRA_MIGRATE_DB": name,
        "LAYRA_MIGRATE_LOCK_TTL": TTL,
        "PYTHONFAULTHANDLER": "1",
        **KEY_ENV,
        **extra,
    }


def _communicate(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """Wait for the process; a hang fails the test with the process's Python stacks."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"{proc.args[3:]} hung for {timeout:g}s; stacks:\n{err[-6000:]}")


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text, text[-2000:]


def assert_single_journal_entry_per_document(db: Any) -> None:
    """Every changed document has exactly one live undo entry: no duplicate journaling."""
    keys = Counter(
        (e["migration"], e["collection"], repr(e["doc_id"]))
        for e in db[JOURNAL].find(
            {"state": {"$in": list(LIVE_STATES)}}, {"migration": 1, "collection": 1, "doc_id": 1}
        )
    )
    dupes = [k for k, n in keys.items() if n > 1]
    assert not dupes, f"{len(dupes)} document(s) journaled twice, e.g. {dupes[0]}"


@dataclass
class Corpus:
    """One small dataset with fixed _ids, seeded into as many databases as a test needs,
    plus the fingerprints an uninterrupted rewrite produces from it."""

    docs: dict[str, list[dict[str, Any]]]
    plan: Path
    original: dict[str, dict[str, str]]
    reference: dict[str, dict[str, str]]
    changed: int

    def seed(self, db: Any) -> None:
        for c, docs in self.docs.items():
            db[c].insert_many(copy.deepcopy(docs))


@pytest.fixture(scope="module")
def corpus(
    sync_client: Any, mongo_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Corpus]:
    from bson import ObjectId

    from layra_migrate.sandbox.litellm_config import write_litellm_config

    tmp = tmp_path_factory.mktemp("faults")
    data = build_dataset(users=12, seed=20261127)
    docs = {
        c: [dict(copy.deepcopy(d), _id=ObjectId()) for d in ds]
        for c, ds in data.collections().items()
    }
    ref = f"f_{os.getpid()}_ref"
    try:
        for c, ds in docs.items():
            sync_client[ref][c].insert_many(copy.deepcopy(ds))
        original = raw_fingerprint(sync_client[ref])
        cfg = write_litellm_config(tmp / "litellm")

        def cli(*args: str, env: dict[str, str] | None = None) -> CliResult:
            return run_cli(
                *args,
                env={"LAYRA_MIGRATE_MONGO_URI": mongo_uri, "LAYRA_MIGRATE_DB": ref, **(env or {})},
                cwd=tmp,
            )

        plan = write_plan(cli, cfg, tmp / "plan.yaml")
        body = yaml.safe_load(plan.read_text())
        body["database"] = None  # one plan for every copy
        plan.write_text(yaml.safe_dump(body))
        r = cli("rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", "--json", env=KEY_ENV)
        assert r.code == 0, r.stderr
        changed = r.json()["documents"]
        assert changed >= 10, "the corpus must give the kills room to land mid-run"
        reference = raw_fingerprint(sync_client[ref])
        assert reference != original
        yield Corpus(docs, plan, original, reference, changed)
    finally:
        sync_client.drop_database(ref)


@pytest.fixture
def fresh_db(sync_client: Any) -> Iterator[Callable[[str], Any]]:
    names: list[str] = []

    def make(tag: str) -> Any:
        name = f"f_{os.getpid()}_{tag}_{len(names)}"
        names.append(name)
        sync_client.drop_database(name)
        return sync_client[name]

    yield make
    for n in names:
        sync_client.drop_database(n)


def _kill_at(
    proc: subprocess.Popen[str], db: Any, rng: random.Random, *, restored: bool, total: int
) -> bool:
    """Kill -9 ``proc`` at a seeded random point: after a random delay (which may land
    before the lock, in the preflight, or between batches) or once the journal reached a
    random count. Returns whether the process was still running when killed."""
    if rng.random() < 0.4:
        time.sleep(rng.uniform(0.0, 1.6))
    else:
        n = rng.randint(0, total)
        flt = {"state": "restored"} if restored else {}

        def reached() -> bool:
            return proc.poll() is not None or db[JOURNAL].count_documents(flt) >= n

        wait_for(reached, 60, interval=0.002)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    out, err = _communicate(proc, 30)
    assert_no_canary(out, err)
    return alive


def _run_until_done(args: list[str], env: dict[str, str], cwd: Path, expect: int = 0) -> CliResult:
    """Re-run a command the way an operator would, at once: a dead run's lock on this host
    is taken over immediately (tests/test_layra_recovery.py and
    tests/test_lock_after_last_write.py prove that deterministically); should a lock
    still be reported live (exit 4), wait for its lease, never `unlock`."""
    deadline = time.monotonic() + 30
    while True:
        r = run_cli(*args, env=env, cwd=cwd)
        if r.code == 4 and "holds the lock" in r.stderr and time.monotonic() < deadline:
            time.sleep(0.3)
            continue
        assert r.code == expect, (args, r.code, r.stderr[-3000:])
        _no_traceback(r.stderr)
        assert_no_canary(r.stdout, r.stderr)
        return r


def _states(db: Any) -> list[str]:
    """The ledger's newest up/down run status per migration, read directly."""
    runs = list(db[LEDGER].find({"direction": {"$in": ["up", "down"]}}).sort("started_at", 1))
    return [f"{r['direction']}:{r['status']}" for r in runs[-1:]]


def test_kill_9_rewrite_and_rollback_at_random_points(
    corpus: Corpus, fresh_db: Callable[[str], Any], mongo_uri: str, tmp_path: Path
) -> None:
    """14 seeded trials, 24 kill -9 in all: every trial kills a rewrite; 8 trials also kill
    the rollback that follows (two of them twice in a row; two rewrite again after the
    killed rollback, as an operator changing their mind). Re-running always completes; the
    resumed rewrite equals an uninterrupted one byte for byte, and the final rollback
    restores the original content hash."""
    rng = random.Random(0xF417)
    rewrite = ["rewrite", "--plan", str(corpus.plan), "--yes", "--skip-unresolved"]
    kills = {"rewrite": 0, "rollback": 0}
    mid_run = {"rewrite": 0, "rollback": 0}
    trials = 14
    for trial in range(trials):
        db = fresh_db("k9")
        corpus.seed(db)
        assert raw_fingerprint(db) == corpus.original
        env = _env(mongo_uri, db.name)
        proc = _popen([*rewrite, "--batch-size", str(rng.randint(1, 3))], env, tmp_path)
        kills["rewrite"] += 1
        mid_run["rewrite"] += _kill_at(proc, db, rng, restored=False, total=corpus.changed)
        r = _run_until_done([*rewrite, "--json"], env, tmp_path)
        assert raw_fingerprint(db) == corpus.reference, f"trial {trial}: resumed rewrite differs"
        assert r.json()["exit_code"] == 0
        assert_single_journal_entry_per_document(db)
        assert db[LOCK].find_one() is None
        assert _states(db) == ["up:applied"]

        if trial % 7 in (1, 2, 4, 6):  # 8 of 14 trials
            for _ in range(1 + (trial in (2, 9))):
                proc = _popen(
                    ["rollback", "--yes", "--batch-size", str(rng.randint(1, 3))], env, tmp_path
                )
                kills["rollback"] += 1
                mid_run["rollback"] += _kill_at(proc, db, rng, restored=True, total=corpus.changed)
            if trial in (4, 13):
                # Changed one's mind after the killed rollback: rewrite again first.
                _run_until_done([*rewrite], env, tmp_path)
                assert raw_fingerprint(db) == corpus.reference, f"trial {trial}"
                assert_single_journal_entry_per_document(db)
        rb = _run_until_done(["rollback", "--yes", "--json"], env, tmp_path)
        assert rb.json()["conflict_count"] == 0
        assert raw_fingerprint(db) == corpus.original, f"trial {trial}: rollback not exact"
        assert _states(db) == ["down:rolled_back"]
        assert db[LOCK].find_one() is None, (os.getpid(), db[LOCK].find_one(), rb.stderr[-2000:])
        # every undo was used: no entry is left holding a before-image to restore
        assert db[JOURNAL].count_documents({"state": {"$in": list(LIVE_STATES)}}) == 0
    st = run_cli("status", "--json", env=env, cwd=tmp_path).json()
    assert [m["state"] for m in st["migrations"]] == ["rolled_back"] and st["lock"] is None
    assert sum(kills.values()) >= 20 and kills["rollback"] >= 8, kills
    # Most kills land while the process runs (the others hit a run that just finished,
    # or one still starting: also points a kill can land on).
    assert mid_run["rewrite"] >= trials * 2 // 3 and mid_run["rollback"] >= 6, mid_run


def test_a_dead_runs_live_lease_on_another_host_names_its_holder_then_expires(
    corpus: Corpus, fresh_db: Callable[[str], Any], mongo_uri: str, tmp_path: Path
) -> None:
    """Across hosts the lease rule stays (a dead holder on this host is taken over at once:
    tests/test_layra_recovery.py): the killed run's lock is made to look like another
    host's, as when the operator re-runs from a second machine."""
    db = fresh_db("lease")
    corpus.seed(db)
    env = _env(mongo_uri, db.name, LAYRA_MIGRATE_LOCK_TTL="4")
    rewrite = ["rewrite", "--plan", str(corpus.plan), "--yes", "--skip-unresolved"]
    proc = _popen([*rewrite, "--batch-size", "1"], env, tmp_path)
    assert wait_for(lambda: db[JOURNAL].count_documents({}) >= 3 or proc.poll() is not None, 60)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    # another host's lock, with a lease long enough for a loaded machine's re-runs
    from datetime import timedelta

    from layra_migrate.engine.lock import now

    db[LOCK].update_one(
        {}, {"$set": {"host": "another-host", "expires_at": now() + timedelta(seconds=120)}}
    )
    r = run_cli(*rewrite, env=env, cwd=tmp_path)
    assert r.code == 4, r.stderr
    assert f"pid {proc.pid}" in r.stderr and "live" in r.stderr
    # unlock --if-stale refuses the live lease too: the only remedy is to wait
    assert run_cli("unlock", "--if-stale", env=env, cwd=tmp_path).code == 4
    # ... until the lease expires (its time moved forward instead of sleeping 2 minutes)
    db[LOCK].update_one({}, {"$set": {"expires_at": now() - timedelta(seconds=1)}})
    r = run_cli(*rewrite, "--json", env=env, cwd=tmp_path)
    assert r.code == 0, r.stderr
    assert r.json()["lock_taken_over"]["pid"] == proc.pid
    assert raw_fingerprint(db) == corpus.reference


# -- concurrency -----------------------------------------------------------------------------


@pytest.mark.parametrize("processes", [2, 5])
def test_concurrent_rewrites_exactly_one_applies(
    processes: int,
    sync_client: Any,
    fresh_db: Callable[[str], Any],
    mongo_uri: str,
    corpus: Corpus,
    tmp_path: Path,
) -> None:
    db = fresh_db(f"race{processes}")
    data = build_dataset(users=60, seed=processes)
    from layra_migrate.sandbox.layra_data import seed_database

    seed_database(db, data)
    original = raw_fingerprint(db)
    env = _env(mongo_uri, db.name, LAYRA_MIGRATE_LOCK_TTL="30")
    args = [
        "rewrite",
        "--plan",
        str(corpus.plan),
        "--yes",
        "--skip-unresolved",
        "--json",
        "--batch-size",
        "1",
    ]
    # Start them all together; stagger nothing: the lock decides.
    procs = [_popen(args, env, tmp_path) for _ in range(processes)]
    results = []
    for p in procs:
        out, err = _communicate(p, 300)
        results.append((p, out, err))
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0] + [4] * (processes - 1), [(p.returncode, e[-800:]) for p, _, e in results]
    winner = next(p for p, _, _ in results if p.returncode == 0)
    for p, out, err in results:
        assert_no_canary(out, err)
        _no_traceback(err)
        if p.returncode == 4:
            # names the holder: user@host and the winner's pid
            assert "holds the lock" in err and f"pid {winner.pid}" in err, err
            assert "@" in err
            assert f"pid {winner.pid}" in __import__("json").loads(out)["error"]
    ledger = list(db[LEDGER].find({"direction": "up"}))
    assert [r["status"] for r in ledger] == ["applied"] and ledger[0]["pid"] == winner.pid
    assert_single_journal_entry_per_document(db)
    assert db[JOURNAL].count_documents({}) == ledger[0]["counts"]["documents"]
    assert db[LOCK].find_one() is None
    # a late sixth run is a no-op, and rollback is exact
    late = run_cli(*args, env=env, cwd=tmp_path)
    assert late.code == 0 and late.json()["documents"] == 0
    assert run_cli("rollback", "--yes", env=env, cwd=tmp_path).code == 0
    assert raw_fingerprint(db) == original


# -- the MongoDB server goes away ------------------------------------------------------------


@pytest.fixture
def own_mongo(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A SecantusDB of this test's own, which the test stops and restarts on the same port
    and storage path."""
    if os.environ.get("LAYRA_MIGRATE_TEST_MONGO_URI"):
        pytest.skip("stopping the server needs the SecantusDB the suite starts itself")
    storage = tmp_path / "mongo" / "data"
    port = free_port()
    holder: dict[str, Any] = {
        "server": start_mongo(storage, port),
        "storage": storage,
        "port": port,
    }
    try:
        yield holder
    finally:
        holder["server"].stop()


def _mongo_dies_mid_run(
    own: dict[str, Any], proc: subprocess.Popen[str], reached: Callable[[], bool]
) -> tuple[str, str, float]:
    assert wait_for(lambda: reached() or proc.poll() is not None, 60, interval=0.005)
    assert proc.poll() is None, "the run finished before the server was stopped"
    own["server"].stop()
    t0 = time.monotonic()
    out, err = _communicate(proc, 90)
    return out, err, time.monotonic() - t0


def test_mongodb_stopped_mid_rewrite_and_mid_rollback(
    own_mongo: dict[str, Any], corpus: Corpus, tmp_path: Path
) -> None:
    from pymongo import MongoClient

    server: Server = own_mongo["server"]
    uri = server.uri
    name = "layra"
    client: Any = MongoClient(uri, serverSelectionTimeoutMS=10_000)
    try:
        corpus.seed(client[name])
        env = _env(uri, name, LAYRA_MIGRATE_LOCK_TTL="2")
        rewrite = [
            "rewrite",
            "--plan",
            str(corpus.plan),
            "--yes",
            "--skip-unresolved",
            "--timeout",
            "2",
        ]
        proc = _popen([*rewrite, "--batch-size", "1"], env, tmp_path)
        out, err, took = _mongo_dies_mid_run(
            own_mongo, proc, lambda: client[name][JOURNAL].estimated_document_count() >= 4
        )
        client.close()
        assert proc.returncode == 3, err[-3000:]
        _no_traceback(err)
        errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "MongoDB" in errors[0] and "unreachable" in errors[0], err
        assert took < 60, f"took {took:.0f}s to give up"
        assert_no_canary(out, err)

        own_mongo["server"] = start_mongo(own_mongo["storage"], own_mongo["port"])
        client = MongoClient(uri, serverSelectionTimeoutMS=10_000)
        db = client[name]
        # The dead run's lock: left to expire (the server died under it), never a manual
        # unlock. A re-run waits for the lease at most.
        _run_until_done([*rewrite, "--json"], env, tmp_path)
        assert raw_fingerprint(db) == corpus.reference
        assert_single_journal_entry_per_document(db)

        proc = _popen(["rollback", "--yes", "--batch-size", "1", "--timeout", "2"], env, tmp_path)
        out, err, took = _mongo_dies_mid_run(
            own_mongo, proc, lambda: db[JOURNAL].count_documents({"state": "restored"}) >= 3
        )
        client.close()
        assert proc.returncode == 3, err[-3000:]
        _no_traceback(err)
        assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1, err
        own_mongo["server"] = start_mongo(own_mongo["storage"], own_mongo["port"])
        client = MongoClient(uri, serverSelectionTimeoutMS=10_000)
        db = client[name]
        st = run_cli("status", "--json", env=env, cwd=tmp_path).json()
        assert st["migrations"][0]["state"] == "rollback_interrupted", st
        _run_until_done(["rollback", "--yes"], env, tmp_path)
        assert raw_fingerprint(db) == corpus.original
    finally:
        client.close()


def test_mongodb_gone_before_the_run_is_exit_3_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "LAYRA_MIGRATE_MONGO_URI": f"mongodb://u:CANARYpassURI@127.0.0.1:{port}/"
        "?directConnection=true",
        "LAYRA_MIGRATE_DB": "x",
    }
    plan = tmp_path / "plan.yaml"
    plan.write_text("format: layra-migrate/plan/v1\nproxy_urls: [http://litellm:4000]\n")
    for args in (
        ["status"],
        ["rollback", "--yes"],
        ["unlock", "--if-stale"],
        ["rewrite", "--plan", str(plan), "--yes"],
        ["check", "--plan", str(plan)],
    ):
        r = run_cli(*args, "--timeout", "1", env=env, cwd=tmp_path)
        assert r.code == 3, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert "CANARYpassURI" not in r.stderr + r.stdout


# -- Redis goes away between the MongoDB write and the cache clear ---------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Server]:
    server = start_redis(tmp_path / "redis")
    if server is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("redis-server is not installed (CI=true)")
        pytest.skip("redis-server is not installed")
    try:
        yield server
    finally:
        server.stop()


def _journal_cache_keys(db: Any, **flt: Any) -> set[str]:
    return {k for e in db[JOURNAL].find(flt, {"cache_keys": 1}) for k in e.get("cache_keys") or []}


def _pause_at(point: str, gate: Path) -> dict[str, str]:
    """The environment that stops the process at a pause point (engine/faultpoints.py)."""
    return {"LAYRA_MIGRATE_TEST_PAUSE": f"{point}={gate}"}


def _stop_at_pause(
    proc: subprocess.Popen[str], gate: Path, point: str, fault: Callable[[], None]
) -> None:
    """Wait until the process stands at ``point``, inject ``fault``, let it go on."""
    reached = gate / f"{point}.reached"
    assert wait_for(lambda: reached.exists() or proc.poll() is not None, 120)
    if not reached.exists():
        out, err = _communicate(proc, 30)
        pytest.fail(f"exited {proc.returncode} before the {point} point: {err[-3000:]}")
    fault()
    (gate / f"{point}.go").touch()


@pytest.mark.redis
def test_redis_stopped_before_the_cache_clear_names_every_key(
    own_redis: Server,
    corpus: Corpus,
    fresh_db: Callable[[str], Any],
    mongo_uri: str,
    tmp_path: Path,
) -> None:
    import redis

    db = fresh_db("redis")
    corpus.seed(db)
    env = _env(mongo_uri, db.name)
    r = redis.Redis.from_url(own_redis.uri)
    unrelated = {"session:abc": b"1", "model_config:someone-else": b"2"}
    for k, v in unrelated.items():
        r.set(k, v)
    # Redis dies after the ping and before the clear, which runs once at the end, after
    # every MongoDB write: the process pauses right there (the cache-clear pause point),
    # whatever the machine's speed, while the test stops Redis.
    gate = tmp_path / "gate-rewrite"
    gate.mkdir()
    proc = _popen(
        [
            "rewrite",
            "--plan",
            str(corpus.plan),
            "--yes",
            "--skip-unresolved",
            "--batch-size",
            "1",
            "--redis-url",
            own_redis.uri,
        ],
        {**env, **_pause_at("cache-clear", gate)},
        tmp_path,
    )
    _stop_at_pause(proc, gate, "cache-clear", own_redis.stop)
    out, err = _communicate(proc, 120)
    assert proc.returncode == 3, err[-3000:]
    _no_traceback(err)
    expected = _journal_cache_keys(db)
    assert expected and not any(k in unrelated for k in expected)
    for key in expected:
        assert key in err, f"{key} not named"
    assert "delete the listed Redis keys" in out and "15 minutes" in out  # the next step
    # data consistent: exactly the uninterrupted result, lock released, ledger applied
    assert raw_fingerprint(db) == corpus.reference
    assert db[LOCK].find_one() is None
    assert [x["status"] for x in db[LEDGER].find({"direction": "up"})] == ["applied"]
    assert_no_canary(out, err)

    # the same for rollback, with --json
    server = start_redis(tmp_path / "redis2")
    assert server is not None
    try:
        gate = tmp_path / "gate-rollback"
        gate.mkdir()
        proc = _popen(
            ["rollback", "--yes", "--json", "--batch-size", "1", "--redis-url", server.uri],
            {**env, **_pause_at("cache-clear", gate)},
            tmp_path,
        )
        _stop_at_pause(proc, gate, "cache-clear", server.stop)
        out, err = _communicate(proc, 120)
    finally:
        server.stop()
    assert proc.returncode == 3, err[-3000:]
    data = __import__("json").loads(out)
    assert data["exit_code"] == 3 and set(data["redis"]["failed"]) == expected
    assert data["redis"]["error"]
    assert raw_fingerprint(db) == corpus.original
    assert db[LOCK].find_one() is None
    assert_no_canary(out, err)


# -- SIGTERM and Ctrl-C in each phase --------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_rewrite_and_rollback_exits_130_resumable(
    sig: signal.Signals,
    corpus: Corpus,
    fresh_db: Callable[[str], Any],
    mongo_uri: str,
    tmp_path: Path,
) -> None:
    db = fresh_db(f"sig{int(sig)}")
    corpus.seed(db)
    env = _env(mongo_uri, db.name)
    rewrite = ["rewrite", "--plan", str(corpus.plan), "--yes", "--skip-unresolved"]
    proc = _popen([*rewrite, "--batch-size", "1"], env, tmp_path)
    assert wait_for(lambda: db[JOURNAL].estimated_document_count() >= 3, 60, interval=0.005)
    proc.send_signal(sig)
    out, err = _communicate(proc, 60)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in err
    _no_traceback(err)
    assert db[LOCK].find_one() is None
    assert db[LEDGER].find_one({"direction": "up"})["status"] == "interrupted"
    assert_single_journal_entry_per_document(db)
    r = _run_until_done([*rewrite, "--json"], env, tmp_path)
    assert r.json()["migrations"][0]["resumed"] is True
    assert raw_fingerprint(db) == corpus.reference

    proc = _popen(["rollback", "--yes", "--batch-size", "1"], env, tmp_path)
    assert wait_for(
        lambda: db[JOURNAL].count_documents({"state": "restored"}) >= 3, 60, interval=0.005
    )
    proc.send_signal(sig)
    out, err = _communicate(proc, 60)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in err
    _no_traceback(err)
    assert db[LOCK].find_one() is None
    assert (
        run_cli("status", "--json", env=env, cwd=tmp_path).json()["migrations"][0]["state"]
        == "rollback_interrupted"
    )
    _run_until_done(["rollback", "--yes"], env, tmp_path)
    assert raw_fingerprint(db) == corpus.original


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_verify_exits_130_and_records_no_key(
    sig: signal.Signals, fresh_db: Callable[[str], Any], mongo_uri: str, tmp_path: Path
) -> None:
    from layra_migrate.sandbox.provider_stub import ProviderStub

    db = fresh_db(f"vsig{int(sig)}")
    key = "sk-CANARYdirectSTALL-0000"
    with ProviderStub(
        behaviours={"slow-model": "stall"}, valid_keys=frozenset({key}), stall_s=60
    ) as stub:
        db.model_config.insert_one(
            {
                "username": "u",
                "selected_model": "x",
                "models": [
                    {
                        "model_id": "u_slow",
                        "model_name": "slow-model",
                        "model_url": stub.base_url,
                        "api_key": key,
                        "temperature": -1,
                        "max_length": -1,
                        "top_P": -1,
                        "top_K": -1,
                    }
                ],
            }
        )
        proc = _popen(["verify", "--timeout", "50"], _env(mongo_uri, db.name), tmp_path)
        assert wait_for(lambda: bool(stub.requests_for("slow-model")), 30)
        t0 = time.monotonic()
        proc.send_signal(sig)
        out, err = _communicate(proc, 30)
    assert proc.returncode == 130, (proc.returncode, err[-3000:])
    assert time.monotonic() - t0 < 10
    assert "interrupted" in err
    _no_traceback(err)
    assert_no_canary(out, err, repr(list(db["layra_migrate_verify"].find())))


def _simulate_rollback_killed_after_restoring(db: Any) -> dict[str, Any]:
    """The narrowest kill point of a rollback, made deterministic: one document restored,
    the process dead before its journal entry was marked and its run finished."""
    from layra_migrate.engine.lock import now

    entry = db[JOURNAL].find_one(
        {"state": {"$in": list(LIVE_STATES)}, "collection": "conversations"}
    )
    sets = {i["p"]: i["v"] for i in entry["before"] if not i.get("m")}
    unsets = {i["p"]: "" for i in entry["before"] if i.get("m")}
    update: dict[str, Any] = {"$set": sets} if sets else {}
    if unsets:
        update["$unset"] = unsets
    db[entry["collection"]].update_one({"_id": entry["doc_id"]}, update)
    up = db[LEDGER].find_one({"direction": "up"})
    db[LEDGER].insert_one(
        {
            **up,
            "_id": "killed-rollback",
            "direction": "down",
            "status": "running",
            "run_no": up["run_no"] + 1,
            "started_at": now(),
            "finished_at": None,
            "counts": {},
        }
    )
    return entry


@pytest.mark.parametrize("then", ["rewrite", "app_edit"])
def test_a_rollback_killed_after_restoring_but_before_marking(
    then: str, corpus: Corpus, fresh_db: Callable[[str], Any], mongo_uri: str, tmp_path: Path
) -> None:
    """rewrite: re-running rewrite settles the dead rollback's restored documents first
    (no second journal entry for them), and the final rollback is exact.
    app_edit: the app edits the restored document before the re-run: the rollback cannot
    tell "restored, then edited" from "edited instead", so it leaves the document alone
    and reports it (exit 6); the app's edit is never overwritten."""
    from bson import encode

    db = fresh_db(f"settle_{then}")
    corpus.seed(db)
    env = _env(mongo_uri, db.name)
    rewrite = ["rewrite", "--plan", str(corpus.plan), "--yes", "--skip-unresolved"]
    assert run_cli(*rewrite, env=env, cwd=tmp_path).code == 0
    entry = _simulate_rollback_killed_after_restoring(db)
    key = encode({"_id": entry["doc_id"]}).hex()
    if then == "rewrite":
        r = _run_until_done([*rewrite, "--json"], env, tmp_path)
        assert r.json()["documents"] == 1  # the restored document, migrated again
        assert raw_fingerprint(db) == corpus.reference
        assert_single_journal_entry_per_document(db)
        assert db[JOURNAL].find_one({"_id": entry["_id"]})["state"] == "restored"
        _run_until_done(["rollback", "--yes"], env, tmp_path)
        assert raw_fingerprint(db) == corpus.original
        return
    url_path = next(i["p"] for i in entry["before"] if i["p"].endswith(("model_url", "modelURL")))
    db[entry["collection"]].update_one(
        {"_id": entry["doc_id"]}, {"$set": {url_path: "http://ollama.internal:11434/v1"}}
    )
    edited = raw_fingerprint(db)[entry["collection"]][key]
    rb = _run_until_done(["rollback", "--yes", "--json"], env, tmp_path, expect=6)
    assert [c["doc_id"] for c in rb.json()["conflicts"]] == [str(entry["doc_id"])]
    after = raw_fingerprint(db)
    assert after[entry["collection"]][key] == edited  # the app's edit survived
    for coll, docs in corpus.original.items():  # everything else is the original
        for k, digest in docs.items():
            if not (coll == entry["collection"] and k == key):
                assert after[coll][k] == digest, (coll, k)
