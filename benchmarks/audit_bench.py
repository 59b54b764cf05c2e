"""Audit benchmark: the audit's wall time vs the same aggregation pipelines run directly.

    python benchmarks/audit_bench.py [--users N] [--json]

Starts its own SecantusDB (or uses --mongo-uri), seeds realistic Layra data
(about 8 references per user across the four places), then times
``run_audit`` against the raw pipelines it is built from. Target: ratio <= 1.3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from layra_migrate.audit import _anomalies, proxied_users, run_audit, url_name_counts  # noqa: E402
from layra_migrate.litellm.config import load_config  # noqa: E402
from layra_migrate.locations import LOCATION_NAMES  # noqa: E402
from layra_migrate.proxy import ProxySet  # noqa: E402
from layra_migrate.sandbox.layra_data import build_dataset, seed_database_async  # noqa: E402
from layra_migrate.sandbox.litellm_config import write_litellm_config  # noqa: E402
from layra_migrate.sandbox.servers import start_mongo  # noqa: E402
from layra_migrate.settings import Environment  # noqa: E402


async def _raw(db: Any, proxy: ProxySet) -> None:
    rows = await asyncio.gather(*(url_name_counts(db, n) for n in LOCATION_NAMES))
    raw_urls = sorted(
        {r["_id"].get("url") for rs in rows for r in rs if proxy.matches(r["_id"].get("url"))}
    )
    await asyncio.gather(proxied_users(db, raw_urls), _anomalies(db))


async def bench(uri: str, users: int, repeat: int = 3) -> dict[str, Any]:
    from pymongo import AsyncMongoClient

    client: Any = AsyncMongoClient(uri)
    db = client["bench_audit"]
    await client.drop_database("bench_audit")
    data = build_dataset(users=users, seed=3)
    t = time.perf_counter()
    await seed_database_async(db, data)
    seed_s = time.perf_counter() - t
    refs = sum(data.expected.references.values())
    proxy = ProxySet.build()
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(write_litellm_config(Path(tmp)))
        env = Environment({}, None)
        raw_times, audit_times = [], []
        for _ in range(repeat):  # interleaved, best of N, so drift hits both alike
            t = time.perf_counter()
            await _raw(db, proxy)
            raw_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            report = await run_audit(db, proxy, config, env)
            audit_times.append(time.perf_counter() - t)
    assert report.via_proxy == data.expected.proxied_total()
    await client.drop_database("bench_audit")
    await client.close()
    return {
        "audit_references": refs,
        "audit_seed_s": round(seed_s, 2),
        "audit_s": round(min(audit_times), 3),
        "audit_raw_s": round(min(raw_times), 3),
        "audit_ratio": round(min(audit_times) / min(raw_times), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=12500, help="about 8 references each")
    ap.add_argument("--mongo-uri")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        if not args.mongo_uri:
            server = start_mongo(Path(tmp) / "db")
        try:
            result = asyncio.run(bench(args.mongo_uri or server.uri, args.users))  # type: ignore[union-attr]
        finally:
            if server:
                server.stop()
    print(
        json.dumps(result) if args.json else "\n".join(f"{k:>20}: {v}" for k, v in result.items())
    )


if __name__ == "__main__":
    main()
