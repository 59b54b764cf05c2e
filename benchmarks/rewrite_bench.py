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

Prints both wall times, the ratio (target <= 3x) and the engine's peak RSS
(target <= 250 MB).

    .venv/bin/python benchmarks/rewrite_bench.py               # N = 2000, < 2 min
    .venv/bin/python benchmarks/rewrite_bench.py --users 20000 # the real target
    .venv/bin/python benchmarks/rewrite_bench.py --keys unique # every key different
    .venv/bin/python benchmarks/rewrite_bench.py --mongo-uri mongodb://localhost:27017
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import random

PROXY = "http://litellm-proxy:4000/v1"
SPELLINGS = [PROXY, "http://litellm-proxy:4000", "http://localhost:4000/v1"]
MASTER = "sk-bench-master-key-000000000000000000"
VIRTUAL = [f"sk-bench-virtual-{i:02d}-abcdefghijklmnop" for i in range(8)]
PLACEHOLDERS = ["sk-1234", "", None]
TARGET_URL = "https://api.deepseek.com"
ALIAS = "thesis-default"
UPSTREAM = "deepseek-reasoner"
KEY = "sk-bench-direct-key-000000000000000000"


def key_for(i: int, j: int, mode: str, rng: random.Random) -> Any:
    if mode == "unique":
        return f"sk-virtual-{i:06d}-{j}-abcdefghijkl"
    r = rng.random()
    if r < 0.5:
        return MASTER
    if r < 0.8:
        return rng.choice(VIRTUAL)
    return rng.choice(PLACEHOLDERS)


def entry(i: int, j: int, proxied: bool, mode: str = "unique",
          rng: random.Random | None = None) -> dict[str, Any]:
    rng = rng or random.Random(i * 10 + j)
    url = (rng.choice(SPELLINGS) if mode == "shared" else PROXY) if proxied \
        else "https://api.openai.com/v1"
    return {"model_id": f"thesis_{i:06d}_{j}", "model_name": ALIAS if proxied else "gpt-4.1",
            "model_url": url, "api_key": key_for(i, j, mode, rng), "base_used": [],
            "system_prompt": "You are a helpful assistant.", "temperature": -1,
            "max_length": -1, "top_P": -1, "top_K": -1, "score_threshold": -1}


def seed(db: Any, users: int, mode: str = "shared") -> None:
    from datetime import datetime

    rng = random.Random(7)
    batch = 2000
    for start in range(0, users, batch):
        span = range(start, min(users, start + batch))
        db.model_config.insert_many([
            {"username": f"user{i:06d}", "selected_model": f"thesis_{i:06d}_0",
             "models": [entry(i, 0, True, mode, rng), entry(i, 1, True, mode, rng),
                        entry(i, 2, False, mode, rng)]}
            for i in span])
        db.conversations.insert_many([
            {"conversation_id": f"user{i:06d}_c0", "username": f"user{i:06d}",
             "conversation_name": "notes", "model_config": {
                 k: v for k, v in entry(i, 3, True, mode, rng).items() if k != "model_id"},
             "created_at": datetime(2026, 1, 1), "last_modify_at": datetime(2026, 1, 2),
             "is_delete": False, "turns": [{"user_message": "hi", "ai_message": "..."}]}
            for i in span])


def raw_update(db: Any) -> float:
    """The same three fields, server-side, no journal. A pipeline update ($map over
    models[]) rather than array filters: some servers re-evaluate an array filter
    after each $set path, so a filter on model_url would skip the key and name."""
    new = {"model_url": TARGET_URL, "api_key": KEY, "model_name": UPSTREAM}
    t0 = time.monotonic()
    db.model_config.update_many({"models.model_url": {"$in": SPELLINGS}}, [{"$set": {"models": {
        "$map": {"input": "$models",
                 "in": {"$cond": [{"$in": ["$$this.model_url", SPELLINGS]},
                                  {"$mergeObjects": ["$$this", new]}, "$$this"]}}}}}])
    db.conversations.update_many(
        {"model_config.model_url": {"$in": SPELLINGS}},
        {"$set": {f"model_config.{k}": v for k, v in new.items()}})
    return time.monotonic() - t0


async def engine_phase(uri: str, db_name: str, batch: int) -> dict[str, Any]:
    from pymongo import AsyncMongoClient

    from layra_migrate.engine.discovery import discover
    from layra_migrate.engine.runner import RunOptions, Store, apply
    from layra_migrate.litellm.resolve import Target
    from layra_migrate.plan import KeyValues, Plan, PlanEntry

    plan = Plan(None, db_name, SPELLINGS, {
        ALIAS: PlanEntry(ALIAS, Target("deepseek", TARGET_URL, UPSTREAM, "DEEPSEEK_API_KEY"))})
    keys = KeyValues({"DEEPSEEK_API_KEY": KEY})
    client: Any = AsyncMongoClient(uri, tz_aware=False)
    try:
        migrations = discover()
        t0 = time.monotonic()
        result = await apply(Store(client[db_name]), migrations, plan=plan, keys=keys,
                             options=RunOptions(batch_size=batch))
        wall = time.monotonic() - t0
    finally:
        await client.close()
    return {"wall": wall, "documents": result.documents}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--keys", choices=["shared", "unique"], default="shared")
    ap.add_argument("--mongo-uri", default=None, help="a real mongod instead of SecantusDB")
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--db", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.phase == "engine":
        out = asyncio.run(engine_phase(args.mongo_uri, args.db, args.batch_size))
        print(json.dumps(out))
        return

    from pymongo import MongoClient

    server = None
    uri = args.mongo_uri
    if uri is None:
        from layra_migrate.sandbox.servers import start_mongo

        server = start_mongo(Path(tempfile.mkdtemp(prefix="rewrite-bench-")) / "data")
        uri = server.uri
    client: Any = MongoClient(uri)
    names = [f"bench_rewrite_engine_{os.getpid()}", f"bench_rewrite_raw_{os.getpid()}"]
    try:
        t0 = time.monotonic()
        for n in names:
            seed(client[n], args.users, args.keys)
        print(f"seeded 2 x ({args.users} users with 2 proxied entries + {args.users} "
              f"conversations, {args.keys} keys) in {time.monotonic() - t0:.1f}s", flush=True)
        raw = raw_update(client[names[1]])
        print(f"raw done {raw:.2f}s", flush=True)
        proc = subprocess.Popen([sys.executable, __file__, "--phase", "engine", "--db", names[0],
                                 "--mongo-uri", uri, "--batch-size", str(args.batch_size)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        if status != 0:
            raise SystemExit(f"engine phase failed (status {status})")
        engine = json.loads(stdout)
        peak_mb = usage.ru_maxrss / 1024  # Linux: kilobytes
        # both databases must hold the same application data afterwards
        for coll in ("model_config", "conversations"):
            a = [{k: v for k, v in d.items() if k != "_id"}
                 for d in client[names[0]][coll].find({}, sort=[("username", 1)])]
            b = [{k: v for k, v in d.items() if k != "_id"}
                 for d in client[names[1]][coll].find({}, sort=[("username", 1)])]
            assert a == b, f"engine and raw results differ in {coll}"
        ratio = engine["wall"] / raw if raw else float("inf")
        print(f"documents changed: {engine['documents']}")
        print(f"raw update_many (no journal): {raw:.2f}s")
        print(f"engine rewrite (journaled):   {engine['wall']:.2f}s")
        print(f"ratio: {ratio:.2f}x (target <= 3x)")
        print(f"engine peak RSS: {peak_mb:.0f} MB (target <= 250 MB)")
    finally:
        for n in names:
            client.drop_database(n)
        client.close()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
