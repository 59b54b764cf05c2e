"""The benchmark runner works (``--quick``): every result is present and numeric.

Not a timed test: whether targets are met is for docs/PERFORMANCE.md, not for CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from numbers import Real
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

REQUIRED = [
    "startup_ratio",
    "startup_s",
    "startup_baseline_s",
    "audit_ratio",
    "audit_s",
    "audit_raw_s",
    "audit_references",
    "rewrite_ratio",
    "rewrite_s",
    "rewrite_raw_s",
    "rewrite_peak_rss_mb",
    "rewrite_users",
    "rewrite_documents",
    "rewrite_batch_size",
    "rewrite_per_doc_ms",
    "rewrite_journal_s",
    "rewrite_writes_s",
    "rewrite_reads_s",
    "rewrite_postcondition_s",
    "rewrite_journal_share",
    "rewrite_writes_share",
    "rewrite_reads_share",
    "rewrite_postcondition_share",
    "rewrite_engine_cpu_s",
    "rollback_ratio",
    "rollback_s",
    "rollback_raw_s",
    "rollback_peak_rss_mb",
    "rollback_documents",
    "rollback_exact",
    "rewrite_commands_per_batch",
    "rewrite_seq_round_trips_per_batch",
    "rewrite_batches",
    "rollback_commands_per_batch",
    "rollback_seq_round_trips_per_batch",
    "rollback_batches",
    "link_rewrite_s",
    "link_rewrite_raw_s",
    "link_rewrite_ratio",
    "link_rollback_s",
    "link_rollback_raw_s",
    "link_rollback_ratio",
    "link_rewrite_seq_round_trips_per_batch",
    "link_rollback_seq_round_trips_per_batch",
    "link_rewrite_ratio_vs_local",
    "link_rollback_ratio_vs_local",
    "link_latency_ms",
    "verify_ratio",
    "verify_s",
    "verify_slowest_single_s",
    "verify_targets",
    "scale_growth",
    "tuning_best_batch_size",
    "total_s",
]


def _numeric(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def test_quick_run_prints_one_json_object_with_every_result() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(REPO),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)  # exactly one object, nothing else on stdout
    missing = [k for k in REQUIRED if k not in result]
    assert not missing, missing
    wrong = {k: result[k] for k in REQUIRED if not _numeric(result[k])}
    assert not wrong, wrong
    assert result["mode"] == "quick"
    assert result["rollback_exact"] == 1
    assert result["rewrite_documents"] == 2 * result["rewrite_users"]
    # the scale series: three sizes, growing, each with a time per document
    sizes = [row["documents"] for row in result["scale"]]
    assert len(sizes) == 3 and sizes == sorted(sizes) and sizes[0] < sizes[-1]
    for row in result["scale"] + result["batch_tuning"]:
        assert all(_numeric(v) for v in row.values()), row
    assert len(result["batch_tuning"]) >= 2
    # every target is reported with whether it was met (met or not is not asserted)
    assert set(result["targets"]) == {
        "startup_ratio",
        "audit_ratio",
        "rewrite_ratio",
        "rewrite_peak_rss_mb",
        "rollback_ratio",
        "rollback_peak_rss_mb",
        "link_rewrite_seq_round_trips_per_batch",
        "link_rollback_seq_round_trips_per_batch",
        "link_rewrite_ratio_vs_local",
        "link_rollback_ratio_vs_local",
        "verify_ratio",
    }
    # the link case ran through the proxy: the same documents, at least one batch each way
    assert result["link_rewrite_batches"] >= 1 and result["link_rollback_batches"] >= 1
    assert result["link_rewrite_documents"] == result["rewrite_documents"]
    assert set(result["met"]) == set(result["targets"])
