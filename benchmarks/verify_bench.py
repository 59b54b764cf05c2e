"""Benchmark: verify's wall time for 20 targets vs the slowest single target.

20 distinct targets on the loopback provider stub (its own process), each answering
after 300 ms.
Each is first probed alone (sequentially) to find the slowest single probe; then
all 20 are probed together with ``--concurrency 20``. The ratio of the two is
what "finishes in about the slowest target's time" means; target <= 1.3.
For comparison, the default concurrency (8) is also timed: three waves.

    .venv/bin/python benchmarks/verify_bench.py [--targets 20] [--latency-ms 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from layra_migrate.sandbox.servers import free_port, wait_port  # noqa: E402
from layra_migrate.verify import DEFAULT_CONCURRENCY, VerifyTarget, probe, probe_all  # noqa: E402


async def bench(n: int, latency_ms: float, rounds: int) -> dict[str, float]:
    """Returns ``verify_ratio`` (all n together / the slowest single probe) and the times."""
    names = [f"bench-model-{i:02d}" for i in range(n)]
    # The stub runs in its own process, as a remote provider would: in-process it would
    # share the GIL with the probes and the benchmark would measure the stub too.
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "layra_migrate.sandbox.provider_stub",
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
        ],
        stdout=subprocess.DEVNULL,
        cwd=str(REPO),
    )
    try:
        wait_port(port, 20, proc)  # type: ignore[arg-type]
        base_url = f"http://127.0.0.1:{port}/v1"

        def targets() -> list[VerifyTarget]:
            return [
                VerifyTarget(
                    "stub", base_url, name, references=1, api_key=f"sk-bench-key-{i:04d}-xxxxxxxx"
                )
                for i, name in enumerate(names)
            ]

        await probe(targets()[0], 10)  # warm-up: imports, first TLS context
        singles = []
        for t in targets():
            t0 = time.monotonic()
            [r] = await probe_all([t], concurrency=1, timeout_s=10)
            singles.append(time.monotonic() - t0)
            assert r.status == "ok", r.detail
        slowest = max(singles)
        walls = []
        for _ in range(rounds):
            t0 = time.monotonic()
            results = await probe_all(targets(), concurrency=n, timeout_s=10)
            walls.append(time.monotonic() - t0)
            assert all(r.status == "ok" for r in results)
        wall = min(walls)
        t0 = time.monotonic()
        await probe_all(targets(), concurrency=DEFAULT_CONCURRENCY, timeout_s=10)
        default_wall = time.monotonic() - t0
    finally:
        proc.terminate()
        proc.wait(10)
    return {
        "verify_targets": n,
        "verify_latency_ms": latency_ms,
        "verify_s": round(wall, 3),
        "verify_slowest_single_s": round(slowest, 3),
        "verify_ratio": round(wall / slowest, 3),
        "verify_default_concurrency": DEFAULT_CONCURRENCY,
        "verify_default_concurrency_s": round(default_wall, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    r = asyncio.run(bench(args.targets, args.latency_ms, args.rounds))
    n = args.targets
    if args.json:
        print(json.dumps(r))
    else:
        print(f"targets: {n}, latency each: {args.latency_ms:g} ms")
        print(f"slowest single probe:         {r['verify_slowest_single_s'] * 1000:7.0f} ms")
        print(
            f"all {n} at --concurrency {n}:   {r['verify_s'] * 1000:7.0f} ms  "
            f"(best of {args.rounds})"
        )
        print(f"ratio wall / slowest single:  {r['verify_ratio']:7.2f}  (target <= 1.3)")
        print(
            f"all {n} at --concurrency {DEFAULT_CONCURRENCY} (default): "
            f"{r['verify_default_concurrency_s'] * 1000:7.0f} ms "
            f"({-(-n // DEFAULT_CONCURRENCY)} waves)"
        )
    sys.exit(0 if r["verify_ratio"] <= 1.3 else 1)


if __name__ == "__main__":
    main()
