"""All benchmarks in one run, each case side by side with its baseline.

    .venv/bin/python benchmarks/run.py            # target sizes (about 15-25 min on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # tiny sizes: checks the runner works
    .venv/bin/python benchmarks/run.py --json     # one JSON object on stdout
    .venv/bin/python benchmarks/run.py --only rewrite,verify
    .venv/bin/python benchmarks/run.py --only rewrite,link --repeat 3 --latency-ms 10

Starts its own sandbox: a SecantusDB wire server (or ``--mongo-uri`` for a real
mongod) and, for verify, the provider stub in its own process. Cases and targets
(issues F and L): start-up <= 1.5x ``python -c "import typer, rich"``; audit of 100k
references <= 1.3x the same pipelines run directly; rewrite of 20k users + 20k
conversations <= 2.5x a raw ``update_many``, peak RSS <= 100 MB; rollback <= 2.5x a
raw ``update_many`` writing the fields back, peak RSS <= 100 MB (medians of
``--repeat`` runs); verify of 20 targets at 300 ms <= 1.3x the slowest single probe.
``link``: the same rewrite and rollback, each run paired with a same-machine run,
through a loopback proxy adding ``--latency-ms`` each way (engine and raw baseline
alike): at most 6 sequential round trips per batch, and a ratio to the raw baseline
within 1.2x of the same-machine ratio. Also: the rewrite at several batch sizes
(tuning) and at 5k to 200k documents (time per document should stay flat).

These are benchmarks, not tests: the exit status is 0 whether or not targets are met
(the JSON says which are). Progress goes to stderr. Results: docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import audit_bench  # noqa: E402
import rewrite_bench  # noqa: E402
import startup_bench  # noqa: E402
import verify_bench  # noqa: E402

from layra_migrate.engine.context import DEFAULT_BATCH  # noqa: E402
from layra_migrate.sandbox.servers import start_mongo  # noqa: E402

TARGETS: dict[str, float] = {  # key -> the most it may be
    "startup_ratio": 1.5,
    "audit_ratio": 1.3,
    "rewrite_ratio": 2.5,
    "rewrite_peak_rss_mb": 100.0,
    "rollback_ratio": 2.5,
    "rollback_peak_rss_mb": 100.0,
    "link_rewrite_seq_round_trips_per_batch": 6.0,
    "link_rollback_seq_round_trips_per_batch": 6.0,
    "link_rewrite_ratio_vs_local": 1.2,
    "link_rollback_ratio_vs_local": 1.2,
    "verify_ratio": 1.3,
}

SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "startup_repeat": 7,
        "audit_users": 12500,
        "audit_repeat": 3,
        "rewrite_users": 20000,
        "rewrite_repeat": 3,
        "tuning_users": 5000,
        "tuning_batches": [100, 250, 500, 1000, 2000],
        "scale_documents": [5000, 20000, 50000, 200000],
        "verify_targets": 20,
        "verify_latency_ms": 300.0,
        "verify_rounds": 3,
    },
    "quick": {
        "startup_repeat": 2,
        "audit_users": 40,
        "audit_repeat": 1,
        "rewrite_users": 150,
        "rewrite_repeat": 1,
        "tuning_users": 100,
        "tuning_batches": [50, 200],
        "scale_documents": [100, 200, 400],
        "verify_targets": 4,
        "verify_latency_ms": 50.0,
        "verify_rounds": 1,
    },
}

CASES = ("startup", "audit", "rewrite", "link", "tuning", "scale", "verify")


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median over the runs of every numeric figure."""
    out: dict[str, Any] = {}
    for k, v in runs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = round(statistics.median(float(r[k]) for r in runs), 4)
    return out


RUN_KEYS = (
    "rewrite_s",
    "rewrite_raw_s",
    "rewrite_ratio",
    "rollback_s",
    "rollback_raw_s",
    "rollback_ratio",
    "rewrite_seq_round_trips_per_batch",
    "rollback_seq_round_trips_per_batch",
    "rewrite_commands_per_batch",
    "rollback_commands_per_batch",
    "rewrite_peak_rss_mb",
    "rollback_peak_rss_mb",
    "rewrite_cpu_ratio",
    "rollback_cpu_ratio",
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a bench whose own CLI prints, with its prints sent to stderr."""
    saved = sys.stdout
    sys.stdout = sys.stderr
    try:
        return fn(*args, **kwargs)
    finally:
        sys.stdout = saved


def machine() -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pymongo": version("pymongo"),
        "secantusdb": version("SecantusDB"),
    }


def run(
    quick: bool,
    only: set[str],
    mongo_uri: str | None,
    batch_size: int,
    repeat: int | None = None,
    latency_ms: float = 10.0,
) -> dict[str, Any]:
    size = SIZES["quick" if quick else "full"]
    repeat = repeat or size["rewrite_repeat"]
    out: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "machine": machine(),
        "server": "mongod at --mongo-uri"
        if mongo_uri
        else "SecantusDB (Python MongoDB wire-protocol server), standalone",
    }
    started = time.monotonic()
    if "startup" in only:
        log("start-up: layra-migrate --help vs python -c 'import typer, rich'")
        out.update(startup_bench.bench(repeat=size["startup_repeat"]))
        log(f"  ratio {out['startup_ratio']}")
    server = None
    uri = mongo_uri
    needs_db = only & {"audit", "rewrite", "link", "tuning", "scale"}
    tmp = tempfile.TemporaryDirectory(prefix="layra-bench-")
    try:
        if needs_db and uri is None:
            server = start_mongo(Path(tmp.name) / "db")
            uri = server.uri
            log(f"SecantusDB on {uri}")
        pid = server.proc.pid if server is not None else None  # for CPU seconds
        if "audit" in only:
            log(f"audit: {size['audit_users']} users (~8 references each) vs raw pipelines")
            out.update(
                asyncio.run(
                    audit_bench.bench(uri, size["audit_users"], repeat=size["audit_repeat"])
                )
            )
            log(f"  ratio {out['audit_ratio']} ({out['audit_references']} references)")
        if "tuning" in only:
            # Two rounds, the second in reverse order; per size the better round counts.
            best: dict[int, dict[str, Any]] = {}
            batches = size["tuning_batches"]
            for b in batches + batches[::-1]:
                log(f"batch-size tuning: {size['tuning_users']} users, batch {b}")
                r = rewrite_bench.bench(
                    uri,
                    size["tuning_users"],
                    batch_size=b,
                    rollback=False,
                    log=lambda m: log("  " + m),
                    server_pid=pid,
                )
                row = {
                    "batch_size": b,
                    "documents": r["rewrite_documents"],
                    "rewrite_s": r["rewrite_s"],
                    "raw_s": r["rewrite_raw_s"],
                    "ratio": r["rewrite_ratio"],
                    "per_doc_ms": r["rewrite_per_doc_ms"],
                    "peak_rss_mb": r["rewrite_peak_rss_mb"],
                    "cpu_ratio": r.get("rewrite_cpu_ratio", 0.0),
                }
                if b not in best or row["rewrite_s"] < best[b]["rewrite_s"]:
                    best[b] = row
            rows = [best[b] for b in batches]
            out["batch_tuning"] = rows
            out["tuning_users"] = size["tuning_users"]
            out["tuning_best_batch_size"] = min(rows, key=lambda r: r["rewrite_s"])["batch_size"]
        if only & {"rewrite", "link"}:
            local_runs: list[dict[str, Any]] = []
            link_runs: list[dict[str, Any]] = []
            for i in range(repeat):  # interleaved: same machine, then over the link
                log(
                    f"rewrite + rollback ({i + 1}/{repeat}): {size['rewrite_users']} users + "
                    f"as many conversations, batch {batch_size}"
                )
                r = rewrite_bench.bench(
                    uri,
                    size["rewrite_users"],
                    batch_size=batch_size,
                    rollback=True,
                    log=lambda m: log("  " + m),
                    server_pid=pid,
                )
                local_runs.append(r)
                log(
                    f"  rewrite ratio {r['rewrite_ratio']}, rollback ratio "
                    f"{r['rollback_ratio']}, peak RSS {r['rewrite_peak_rss_mb']} MB"
                )
                if "link" in only:
                    log(f"  the same over a {latency_ms:g} ms link (each way)")
                    r = rewrite_bench.bench(
                        uri,
                        size["rewrite_users"],
                        batch_size=batch_size,
                        rollback=True,
                        log=lambda m: log("    " + m),
                        server_pid=pid,
                        delay_ms=latency_ms,
                    )
                    link_runs.append(r)
                    log(
                        f"    rewrite ratio {r['rewrite_ratio']}, rollback ratio "
                        f"{r['rollback_ratio']}; sequential round trips per batch "
                        f"{r['rewrite_seq_round_trips_per_batch']} / "
                        f"{r['rollback_seq_round_trips_per_batch']}"
                    )
            out.update(medians(local_runs))
            out["rewrite_repeat"] = repeat
            out["rewrite_runs"] = [{k: r.get(k) for k in RUN_KEYS} for r in local_runs]
            if link_runs:
                out.update({f"link_{k}": v for k, v in medians(link_runs).items()})
                out["link_latency_ms"] = latency_ms
                out["link_runs"] = [{k: r.get(k) for k in RUN_KEYS} for r in link_runs]
                for phase in ("rewrite", "rollback"):
                    out[f"link_{phase}_ratio_vs_local"] = round(
                        out[f"link_{phase}_ratio"] / out[f"{phase}_ratio"], 3
                    )
                    out[f"link_{phase}_ratio_vs_local_pairs"] = [
                        round(b[f"{phase}_ratio"] / a[f"{phase}_ratio"], 3)
                        for a, b in zip(local_runs, link_runs, strict=True)
                    ]
        if "scale" in only:
            rows = []
            for docs in size["scale_documents"]:
                users = docs // 2  # one model_config + one conversation per user
                log(f"scale: {docs} documents ({users} users)")
                r = rewrite_bench.bench(
                    uri,
                    users,
                    batch_size=batch_size,
                    rollback=False,
                    log=lambda m: log("  " + m),
                    server_pid=pid,
                )
                rows.append(
                    {
                        "documents": r["rewrite_documents"],
                        "users": users,
                        "rewrite_s": r["rewrite_s"],
                        "raw_s": r["rewrite_raw_s"],
                        "per_doc_ms": r["rewrite_per_doc_ms"],
                        "raw_per_doc_ms": r["rewrite_raw_per_doc_ms"],
                        "ratio": r["rewrite_ratio"],
                        "cpu_ratio": r.get("rewrite_cpu_ratio", 0.0),
                    }
                )
            out["scale"] = rows
            out["scale_growth"] = round(rows[-1]["per_doc_ms"] / rows[0]["per_doc_ms"], 3)
    finally:
        if server is not None:
            server.stop()
        tmp.cleanup()
    if "verify" in only:
        log(
            f"verify: {size['verify_targets']} targets at {size['verify_latency_ms']:g} ms "
            "vs the slowest single probe (stub in its own process)"
        )
        out.update(
            _quiet(
                asyncio.run,
                verify_bench.bench(
                    size["verify_targets"], size["verify_latency_ms"], size["verify_rounds"]
                ),
            )
        )
        log(f"  ratio {out['verify_ratio']}")
    if out.get("scale"):
        out["scale_per_doc_ms"] = [row["per_doc_ms"] for row in out["scale"]]
    out["targets"] = {k: v for k, v in TARGETS.items() if k in out}
    out["met"] = {k: bool(out[k] <= v) for k, v in out["targets"].items()}
    out["total_s"] = round(time.monotonic() - started, 1)
    return out


def show(r: dict[str, Any]) -> None:
    print(f"layra-migrate benchmarks ({r['mode']}), {r['machine']['cpus']} cores, {r['server']}")
    rows = [
        ("start-up", "startup_ratio", "startup_s", "startup_baseline_s"),
        ("audit", "audit_ratio", "audit_s", "audit_raw_s"),
        ("rewrite", "rewrite_ratio", "rewrite_s", "rewrite_raw_s"),
        ("rollback", "rollback_ratio", "rollback_s", "rollback_raw_s"),
        ("rewrite@link", "link_rewrite_ratio", "link_rewrite_s", "link_rewrite_raw_s"),
        ("rollback@link", "link_rollback_ratio", "link_rollback_s", "link_rollback_raw_s"),
        ("verify", "verify_ratio", "verify_s", "verify_slowest_single_s"),
    ]
    print(f"{'case':<13} {'tool s':>9} {'baseline s':>11} {'ratio':>7} {'target':>7}  met")
    for name, ratio, tool, base in rows:
        if ratio in r:
            target = r["targets"].get(ratio)
            print(
                f"{name:<13} {r[tool]:>9.3f} {r[base]:>11.3f} {r[ratio]:>7.2f} "
                + (
                    f"{target:>7.2f}  {'yes' if r['met'][ratio] else 'NO'}"
                    if target
                    else f"{'':>7}  (see below)"
                )
            )
    for phase in ("rewrite", "rollback"):
        for where, prefix in (("same machine", ""), ("over the link", "link_")):
            if f"{prefix}{phase}_commands_per_batch" in r:
                print(
                    f"{phase} {where}: {r[f'{prefix}{phase}_commands_per_batch']} commands "
                    f"per batch, {r[f'{prefix}{phase}_seq_round_trips_per_batch']} "
                    "sequential round trips per batch"
                )
        if f"link_{phase}_ratio_vs_local" in r:
            k = f"link_{phase}_ratio_vs_local"
            print(
                f"{phase}: ratio over the link / same-machine ratio {r[k]:.2f} "
                f"(target <= {r['targets'][k]}: {'yes' if r['met'][k] else 'NO'}; pairs "
                f"{r[k + '_pairs']})"
            )
    if "rewrite_peak_rss_mb" in r:
        if "rewrite_cpu_ratio" in r:
            print(
                f"CPU seconds (server + engine vs server): rewrite {r['rewrite_cpu_s']:.1f} vs "
                f"{r['rewrite_raw_cpu_s']:.1f} = {r['rewrite_cpu_ratio']:.2f}x, rollback "
                f"{r['rollback_cpu_s']:.1f} vs {r['rollback_raw_cpu_s']:.1f} = "
                f"{r['rollback_cpu_ratio']:.2f}x"
            )
        print(
            f"rewrite peak RSS {r['rewrite_peak_rss_mb']:.0f} MB (target <= 100), "
            f"rollback {r['rollback_peak_rss_mb']:.0f} MB; "
            f"{r['rewrite_documents']} documents"
        )
        for phase in ("rewrite", "rollback"):
            parts = ", ".join(
                f"{k} {r[f'{phase}_{k}_s']:.2f}s ({r[f'{phase}_{k}_share']:.0%})"
                for k in ("journal", "writes", "reads", "postcondition", "lock_ledger")
            )
            print(
                f"  {phase} round trips: {parts}; engine CPU not overlapped "
                f"{r[f'{phase}_engine_cpu_s']:.2f}s"
            )
    for row in r.get("batch_tuning", []):
        print(
            f"batch {row['batch_size']:>5}: {row['rewrite_s']:.2f}s "
            f"({row['per_doc_ms']:.3f} ms/doc, ratio {row['ratio']:.2f}, "
            f"{row['peak_rss_mb']:.0f} MB)"
        )
    for row in r.get("scale", []):
        print(
            f"scale {row['documents']:>6} documents: {row['rewrite_s']:.2f}s, "
            f"{row['per_doc_ms']:.3f} ms/doc (raw {row['raw_per_doc_ms']:.3f}), "
            f"ratio {row['ratio']:.2f}"
        )
    print(f"total {r['total_s']}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI: the runner works)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument(
        "--only",
        default=",".join(CASES),
        help=f"comma-separated cases (default all: {','.join(CASES)})",
    )
    ap.add_argument("--mongo-uri", default=None, help="a real mongod instead of SecantusDB")
    ap.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH,
        help=f"the engine's batch size (default: the tool's, {DEFAULT_BATCH})",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="rewrite/rollback runs, interleaved, medians reported (default 3; --quick: 1)",
    )
    ap.add_argument(
        "--latency-ms", type=float, default=10.0, help="the link case's delay each way (default 10)"
    )
    ap.add_argument(
        "--scale",
        default=None,
        help="comma-separated document counts for the scale case (default 5000,20000,50000,200000)",
    )
    args = ap.parse_args()
    only = {c.strip() for c in args.only.split(",") if c.strip()}
    unknown = only - set(CASES)
    if unknown:
        ap.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    if args.scale:
        SIZES["quick" if args.quick else "full"]["scale_documents"] = [
            int(n) for n in args.scale.split(",")
        ]
    result = run(args.quick, only, args.mongo_uri, args.batch_size, args.repeat, args.latency_ms)
    if args.json:
        print(json.dumps(result))
    else:
        show(result)


if __name__ == "__main__":
    main()
