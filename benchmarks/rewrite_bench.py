"""Benchmark: rewrite wall time and peak memory vs a raw server-side update_many.

N users, each with a model_config document holding 2 proxied entries (plus one
direct entry), and N conversations with a proxied snapshot. Keys as deployments
hold them (``--keys shared``, the default: the proxy's master key in half the
copies, a few virtual keys, placeholders; three proxy URL spellings) or a
different key in every copy (``--keys unique``, the worst case for the engine,
which merges identical guarded updates). The same fields (URL, key, model name)
are rewritten twice, on identical databases:

- engine: migration 0001 through the journal (before-images, guarded writes,
  lock checks, post-condition), in a child process whose peak RSS is measured;
- raw: ``update_many`` with array filters, server-side, no journal, no safety.

Then both are rolled back: the engine's ``rollback`` (journal replay, guarded restores,
in a child process too) against a raw ``update_many`` writing the same fields back
(the proxy URL, the master key, the alias: a lower bound, since without a journal it
cannot restore each copy's own key and spelling). The engine's rollback must restore
the exact original content hash.

Prints both wall times, the ratios (target <= 2.5x), the engine's peak RSS
(target <= 100 MB) and where the engine's time went (driver-measured round trips per
kind of command). ``benchmarks/run.py`` calls :func:`bench`.

    .venv/bin/python benchmarks/rewrite_bench.py               # N = 2000, < 2 min
    .venv/bin/python benchmarks/rewrite_bench.py --users 20000 # the real target
    .venv/bin/python benchmarks/rewrite_bench.py --keys unique # every key different
    .venv/bin/python benchmarks/rewrite_bench.py --mongo-uri mongodb://localhost:27017
    .venv/bin/python benchmarks/rewrite_bench.py --latency-ms 10  # over a slow link
    .venv/bin/python benchmarks/rewrite_bench.py --json      # one JSON object
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

PROXY = "http://litellm-proxy:4000/v1"
SPELLINGS = [PROXY, "http://litellm-proxy:4000", "http://localhost:4000/v1"]
MASTER = "sk-bench-master-key-FAKE-0000"
VIRTUAL = [f"sk-bench-virtual-{i:02d}-abcdefghijklmnop" for i in range(8)]
PLACEHOLDERS = ["sk-1234", "", None]
TARGET_URL = "https://api.deepseek.com"
ALIAS = "thesis-default"
UPSTREAM = "deepseek-reasoner"
KEY = "sk-bench-direct-key-FAKE-0000"


def key_for(i: int, j: int, mode: str, rng: random.Random) -> Any:
    if mode == "unique":
        return f"sk-virtual-{i:06d}-{j}-abcdefghijkl"
    r = rng.random()
    if r < 0.5:
        return MASTER
    if r < 0.8:
        return rng.choice(VIRTUAL)
    return rng.choice(PLACEHOLDERS)


def entry(
    i: int, j: int, proxied: bool, mode: str = "unique", rng: random.Random | None = None
) -> dict[str, Any]:
    rng = rng or random.Random(i * 10 + j)
    url = (
        (rng.choice(SPELLINGS) if mode == "shared" else PROXY)
        if proxied
        else "https://api.openai.com/v1"
    )
    return {
        "model_id": f"thesis_{i:06d}_{j}",
        "model_name": ALIAS if proxied else "gpt-4.1",
        "model_url": url,
        "api_key": key_for(i, j, mode, rng),
        "base_used": [],
        "system_prompt": "You are a helpful assistant.",
        "temperature": -1,
        "max_length": -1,
        "top_P": -1,
        "top_K": -1,
        "score_threshold": -1,
    }


def seed(db: Any, users: int, mode: str = "shared") -> None:
    from datetime import datetime

    rng = random.Random(7)
    batch = 2000
    for start in range(0, users, batch):
        span = range(start, min(users, start + batch))
        db.model_config.insert_many(
            [
                {
                    "username": f"user{i:06d}",
                    "selected_model": f"thesis_{i:06d}_0",
                    "models": [
                        entry(i, 0, True, mode, rng),
                        entry(i, 1, True, mode, rng),
                        entry(i, 2, False, mode, rng),
                    ],
                }
                for i in span
            ]
        )
        db.conversations.insert_many(
            [
                {
                    "conversation_id": f"user{i:06d}_c0",
                    "username": f"user{i:06d}",
                    "conversation_name": "notes",
                    "model_config": {
                        k: v for k, v in entry(i, 3, True, mode, rng).items() if k != "model_id"
                    },
                    "created_at": datetime(2026, 1, 1),
                    "last_modify_at": datetime(2026, 1, 2),
                    "is_delete": False,
                    "turns": [{"user_message": "hi", "ai_message": "..."}],
                }
                for i in span
            ]
        )


def raw_restore(db: Any) -> float:
    """Rollback's baseline: the same fields written back server-side, no journal. Every
    copy gets the proxy URL, the master key and the alias (a raw update cannot know
    each copy's own values), so it is a lower bound on the work of a real restore."""
    old = {"model_url": PROXY, "api_key": MASTER, "model_name": ALIAS}
    t0 = time.monotonic()
    db.model_config.update_many(
        {"models.model_url": TARGET_URL},
        [
            {
                "$set": {
                    "models": {
                        "$map": {
                            "input": "$models",
                            "in": {
                                "$cond": [
                                    {"$eq": ["$$this.model_url", TARGET_URL]},
                                    {"$mergeObjects": ["$$this", old]},
                                    "$$this",
                                ]
                            },
                        }
                    }
                }
            }
        ],
    )
    db.conversations.update_many(
        {"model_config.model_url": TARGET_URL},
        {"$set": {f"model_config.{k}": v for k, v in old.items()}},
    )
    return time.monotonic() - t0


def content_hash(db: Any) -> str:
    """Hash of the application data (raw BSON bytes of every document, in _id order)."""
    from bson.raw_bson import RawBSONDocument

    h = hashlib.sha256()
    for coll in ("model_config", "conversations"):
        for d in (
            db[coll]
            .with_options(
                codec_options=db.codec_options.with_options(document_class=RawBSONDocument)
            )
            .find({}, sort=[("_id", 1)])
        ):
            h.update(d.raw)
    return h.hexdigest()


def raw_update(db: Any) -> float:
    """The same three fields, server-side, no journal. A pipeline update ($map over
    models[]) rather than array filters: some servers re-evaluate an array filter
    after each $set path, so a filter on model_url would skip the key and name."""
    new = {"model_url": TARGET_URL, "api_key": KEY, "model_name": UPSTREAM}
    t0 = time.monotonic()
    db.model_config.update_many(
        {"models.model_url": {"$in": SPELLINGS}},
        [
            {
                "$set": {
                    "models": {
                        "$map": {
                            "input": "$models",
                            "in": {
                                "$cond": [
                                    {"$in": ["$$this.model_url", SPELLINGS]},
                                    {"$mergeObjects": ["$$this", new]},
                                    "$$this",
                                ]
                            },
                        }
                    }
                }
            }
        ],
    )
    db.conversations.update_many(
        {"model_config.model_url": {"$in": SPELLINGS}},
        {"$set": {f"model_config.{k}": v for k, v in new.items()}},
    )
    return time.monotonic() - t0


def _kind(name: str, coll: str) -> str:
    """Which part of the engine's work a command belongs to."""
    if coll == "layra_migrate_journal":
        return "journal"
    if coll.startswith("layra_migrate_"):
        return "lock_ledger"
    if name in ("update", "delete", "insert"):
        return "writes"
    if name == "aggregate":
        return "postcondition"
    return "reads"  # find, getMore, count


def _listener() -> Any:
    from pymongo import monitoring

    class Split(monitoring.CommandListener):
        """Seconds and commands per kind, and every command's interval (monotonic clock,
        taken when the driver sends it and when the reply arrives)."""

        def __init__(self) -> None:
            self.seconds: dict[str, float] = {}
            self.commands: dict[str, int] = {}
            self.events: list[tuple[float, float, str, str]] = []
            self._pending: dict[int, tuple[str, str, float]] = {}

        def started(self, event: Any) -> None:
            cmd = event.command
            coll = cmd.get(event.command_name)
            if not isinstance(coll, str):
                coll = str(cmd.get("collection", ""))
            self._pending[event.request_id] = (
                _kind(event.command_name, coll),
                event.command_name,
                time.monotonic(),
            )

        def _done(self, event: Any) -> None:
            end = time.monotonic()
            kind, name, start = self._pending.pop(event.request_id, ("lock_ledger", "?", end))
            self.seconds[kind] = self.seconds.get(kind, 0.0) + event.duration_micros / 1e6
            self.commands[kind] = self.commands.get(kind, 0) + 1
            self.events.append((start, end, kind, name))

        succeeded = failed = _done

    return Split()


def round_trips(events: list[tuple[float, float, str, str]], phase: str) -> dict[str, float]:
    """Commands per batch and sequential round trips per batch, from the driver's events.

    Batches: journal ``insert`` commands (rewrite: one per batch) or journal ``update``
    commands (rollback: the marks, one per batch). The batch phase runs from the first
    journal command to the last journal or document write; every command inside it
    counts (lock checks, reads, read-ahead, heartbeats). Sequential round trips: the
    most commands of the phase that ran strictly one after another (the greedy longest
    chain of non-overlapping intervals): commands in flight together count once, which
    is what a slow link charges for."""
    marker = "insert" if phase == "engine" else "update"
    batches = sum(1 for _, _, kind, name in events if kind == "journal" and name == marker)
    journal = [e for e in events if e[2] == "journal"]
    if not batches or not journal:
        return {"batches": 0, "commands_per_batch": 0.0, "seq_round_trips_per_batch": 0.0}
    start = min(e[0] for e in journal)
    end = max(e[1] for e in events if e[2] in ("journal", "writes"))
    inside = [e for e in events if e[0] >= start and e[1] <= end]
    chain, last = 0, float("-inf")
    for s_, e_, _, _ in sorted(inside, key=lambda ev: ev[1]):
        if s_ >= last:
            chain += 1
            last = e_
    out: dict[str, float] = {
        "batches": batches,
        "commands_per_batch": round(len(inside) / batches, 2),
        "seq_round_trips_per_batch": round(chain / batches, 2),
    }
    for kind in ("journal", "writes", "reads", "lock_ledger"):
        n = sum(1 for e in inside if e[2] == kind)
        out[f"commands_per_batch_{kind}"] = round(n / batches, 2)
    return out


def _plan(db_name: str) -> tuple[Any, Any]:
    from layra_migrate.litellm.resolve import Target
    from layra_migrate.plan import KeyValues, Plan, PlanEntry

    plan = Plan(
        None,
        db_name,
        SPELLINGS,
        {ALIAS: PlanEntry(ALIAS, Target("deepseek", TARGET_URL, UPSTREAM, "DEEPSEEK_API_KEY"))},
    )
    return plan, KeyValues({"DEEPSEEK_API_KEY": KEY})


async def engine_phase(uri: str, db_name: str, batch: int, phase: str) -> dict[str, Any]:
    """Runs in a child process (so its peak RSS is the engine's own)."""
    from pymongo import AsyncMongoClient

    from layra_migrate.engine.discovery import discover
    from layra_migrate.engine.runner import RunOptions, Store, apply, rollback

    split = _listener()
    client: Any = AsyncMongoClient(uri, tz_aware=False, event_listeners=[split])
    try:
        migrations = discover()
        plan, keys = _plan(db_name)
        t0 = time.monotonic()
        if phase == "engine":
            result = await apply(
                Store(client[db_name]),
                migrations,
                plan=plan,
                keys=keys,
                options=RunOptions(batch_size=batch),
            )
            documents = result.documents
        else:
            rb = await rollback(
                Store(client[db_name]),
                migrations,
                to=None,
                force=False,
                options=RunOptions(batch_size=batch),
            )
            documents = sum(s.restored for s in rb.stats.values())
            if rb.conflict_count:
                raise SystemExit(f"rollback reported {rb.conflict_count} conflicts")
        wall = time.monotonic() - t0
    finally:
        await client.close()
    return {
        "wall": wall,
        "documents": documents,
        "split": split.seconds,
        "commands": split.commands,
        "peak_rss_mb": peak_rss_mb(),
        "rounds": round_trips(split.events, phase),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ``ru_maxrss``: a child started by
    fork/vfork + exec inherits the parent's high-water mark there, so a big parent would
    be reported as the engine's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used (Linux /proc), 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _child(uri: str, db_name: str, batch: int, phase: str) -> tuple[dict[str, Any], float]:
    """The engine phase in a child process; returns its result (with the child's own CPU
    seconds) and peak RSS in MB."""
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--phase",
            phase,
            "--db",
            db_name,
            "--mongo-uri",
            uri,
            "--batch-size",
            str(batch),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(REPO),
    )
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"engine {phase} phase failed (status {status})")
    out = json.loads(stdout)
    out["cpu"] = usage.ru_utime + usage.ru_stime
    return out, float(out["peak_rss_mb"])


def _app_docs(db: Any, coll: str) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in d.items() if k != "_id"}
        for d in db[coll].find({}, sort=[("username", 1)])
    ]


def _split_report(prefix: str, wall: float, split: dict[str, float]) -> dict[str, float]:
    """Seconds per kind of command, as the driver timed the round trips, and the share of
    each in their sum. With one batch in flight while the next is read, round trips can
    overlap, so the shares are of the time spent waiting on the server, not of wall time;
    ``engine_cpu_s`` is the wall time no round trip covered (Python work in the engine)."""
    kinds = ("journal", "writes", "reads", "postcondition", "lock_ledger")
    total = sum(split.values()) or 1.0
    out: dict[str, float] = {}
    for k in kinds:
        out[f"{prefix}_{k}_s"] = round(split.get(k, 0.0), 3)
        out[f"{prefix}_{k}_share"] = round(split.get(k, 0.0) / total, 3)
    out[f"{prefix}_engine_cpu_s"] = round(max(0.0, wall - sum(split.values())), 3)
    return out


def bench(
    uri: str,
    users: int,
    batch_size: int = 500,
    keys: str = "shared",
    rollback: bool = True,
    log: Any = None,
    server_pid: int | None = None,
    delay_ms: float = 0.0,
) -> dict[str, Any]:
    """Rewrite (and roll back) ``users`` users + as many conversations, engine vs raw, on
    two identical databases of the server at ``uri``. Returns one flat dict of numbers.

    With ``delay_ms`` every timed operation (the engine's runs and the raw baselines)
    goes through :mod:`latency_proxy`, which adds that delay each way; seeding and
    checking use the server directly.

    With ``server_pid`` (the server runs here) CPU seconds are reported too: the server's
    plus the engine process's, against the server's alone for the raw update. On a shared
    machine they vary far less than wall times."""
    say = log or (lambda msg: None)
    with contextlib.ExitStack() as stack:
        timed_uri = uri
        if delay_ms > 0:
            import latency_proxy

            timed_uri = stack.enter_context(latency_proxy.running(uri, delay_ms)).uri
        return _bench(uri, timed_uri, users, batch_size, keys, rollback, say, server_pid)


def _bench(
    uri: str,
    timed_uri: str,
    users: int,
    batch_size: int,
    keys: str,
    rollback: bool,
    say: Any,
    server_pid: int | None,
) -> dict[str, Any]:
    from pymongo import MongoClient

    client: Any = MongoClient(uri)
    timed: Any = MongoClient(timed_uri) if timed_uri != uri else client
    tag = f"{os.getpid()}_{users}_{batch_size}"
    names = [f"bench_rewrite_engine_{tag}", f"bench_rewrite_raw_{tag}"]
    try:
        t0 = time.monotonic()
        for n in names:
            client.drop_database(n)
            seed(client[n], users, keys)
        original = content_hash(client[names[0]]) if rollback else ""
        say(
            f"seeded 2 x ({users} users with 2 proxied entries + {users} conversations, "
            f"{keys} keys) in {time.monotonic() - t0:.1f}s"
        )
        c0 = cpu_seconds(server_pid)
        timed.admin.command("ping")  # connected before the clock starts
        raw = raw_update(timed[names[1]])
        c1 = cpu_seconds(server_pid)
        engine, peak_mb = _child(timed_uri, names[0], batch_size, "engine")
        c2 = cpu_seconds(server_pid)
        say(
            f"rewrite: raw {raw:.2f}s, engine {engine['wall']:.2f}s, "
            f"{engine['documents']} documents"
        )
        for coll in ("model_config", "conversations"):  # same application data afterwards
            if _app_docs(client[names[0]], coll) != _app_docs(client[names[1]], coll):
                raise AssertionError(f"engine and raw results differ in {coll}")
        documents = int(engine["documents"])
        out: dict[str, Any] = {
            "rewrite_users": users,
            "rewrite_documents": documents,
            "rewrite_batch_size": batch_size,
            "rewrite_s": round(engine["wall"], 3),
            "rewrite_raw_s": round(raw, 3),
            "rewrite_ratio": round(engine["wall"] / raw, 3),
            "rewrite_per_doc_ms": round(engine["wall"] / max(documents, 1) * 1000, 4),
            "rewrite_raw_per_doc_ms": round(raw / max(documents, 1) * 1000, 4),
            "rewrite_peak_rss_mb": round(peak_mb, 1),
            **_split_report("rewrite", engine["wall"], engine["split"]),
            **{f"rewrite_{k}": v for k, v in engine["rounds"].items()},
        }
        if server_pid is not None:
            cpu, raw_cpu = c2 - c1 + engine["cpu"], c1 - c0
            out.update(
                {
                    "rewrite_cpu_s": round(cpu, 2),
                    "rewrite_raw_cpu_s": round(raw_cpu, 2),
                    "rewrite_cpu_ratio": round(cpu / max(raw_cpu, 0.01), 3),
                }
            )
        if rollback:
            # the other order this time, so drift on the machine does not favour one side
            c0 = cpu_seconds(server_pid)
            back, back_mb = _child(timed_uri, names[0], batch_size, "rollback")
            c1 = cpu_seconds(server_pid)
            raw_back = raw_restore(timed[names[1]])
            c2 = cpu_seconds(server_pid)
            exact = content_hash(client[names[0]]) == original
            say(f"rollback: raw {raw_back:.2f}s, engine {back['wall']:.2f}s, exact: {exact}")
            if not exact:
                raise AssertionError("rollback did not restore the original content hash")
            out.update(
                {
                    "rollback_s": round(back["wall"], 3),
                    "rollback_raw_s": round(raw_back, 3),
                    "rollback_ratio": round(back["wall"] / raw_back, 3),
                    "rollback_documents": int(back["documents"]),
                    "rollback_peak_rss_mb": round(back_mb, 1),
                    "rollback_exact": 1,
                    **_split_report("rollback", back["wall"], back["split"]),
                    **{f"rollback_{k}": v for k, v in back["rounds"].items()},
                }
            )
            if server_pid is not None:
                cpu, raw_cpu = c1 - c0 + back["cpu"], c2 - c1
                out.update(
                    {
                        "rollback_cpu_s": round(cpu, 2),
                        "rollback_raw_cpu_s": round(raw_cpu, 2),
                        "rollback_cpu_ratio": round(cpu / max(raw_cpu, 0.01), 3),
                    }
                )
        return out
    finally:
        for n in names:
            client.drop_database(n)
        client.close()
        if timed is not client:
            timed.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--keys", choices=["shared", "unique"], default="shared")
    ap.add_argument("--no-rollback", action="store_true", help="time the rewrite only")
    ap.add_argument("--mongo-uri", default=None, help="a real mongod instead of SecantusDB")
    ap.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="add this delay each way (a loopback proxy), e.g. 10",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--db", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.phase in ("engine", "rollback"):
        out = asyncio.run(engine_phase(args.mongo_uri, args.db, args.batch_size, args.phase))
        print(json.dumps(out))
        return

    server = None
    uri = args.mongo_uri
    if uri is None:
        from layra_migrate.sandbox.servers import start_mongo

        server = start_mongo(Path(tempfile.mkdtemp(prefix="rewrite-bench-")) / "data")
        uri = server.uri
    try:
        result = bench(
            uri,
            args.users,
            args.batch_size,
            args.keys,
            rollback=not args.no_rollback,
            server_pid=server.proc.pid if server is not None else None,
            delay_ms=args.latency_ms,
            log=None if args.json else (lambda m: print(m, flush=True)),
        )
    finally:
        if server is not None:
            server.stop()
    if args.json:
        print(json.dumps(result))
        return
    print(f"documents changed: {result['rewrite_documents']}")
    print(f"raw update_many (no journal): {result['rewrite_raw_s']:.2f}s")
    print(f"engine rewrite (journaled):   {result['rewrite_s']:.2f}s")
    print(f"ratio: {result['rewrite_ratio']:.2f}x (target <= 2.5x)")
    print(f"engine peak RSS: {result['rewrite_peak_rss_mb']:.0f} MB (target <= 100 MB)")
    for phase in ("rewrite", "rollback"):
        if f"{phase}_batches" in result:
            print(
                f"{phase}: {result[f'{phase}_batches']} batches, "
                f"{result[f'{phase}_commands_per_batch']} commands per batch, "
                f"{result[f'{phase}_seq_round_trips_per_batch']} sequential round trips "
                f"per batch"
            )
    if "rollback_s" in result:
        print(f"raw restore update_many:      {result['rollback_raw_s']:.2f}s")
        print(f"engine rollback (journal):    {result['rollback_s']:.2f}s")
        print(
            f"rollback ratio: {result['rollback_ratio']:.2f}x (target <= 2.5x), "
            f"peak RSS {result['rollback_peak_rss_mb']:.0f} MB, exact original restored"
        )
    for k, v in result.items():
        if k.endswith("_share"):
            print(f"  {k}: {v:.0%}")


if __name__ == "__main__":
    main()
