"""The Quick start job: all four phases against the sandbox, exit 0, nothing left running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

from tests.conftest import base_env


def _servers() -> set[int]:
    found = set()
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info.get("cmdline") or [])
        if "layra-sandbox-" in cmd or "sandbox-work" in cmd:
            found.add(p.info["pid"])
    return found


def test_sandbox_job_runs_every_phase_and_cleans_up(tmp_path: Path) -> None:
    before = _servers()
    work = tmp_path / "sandbox-work"
    proc = subprocess.run(
        [sys.executable, "-m", "layra_migrate.sandbox", "--users", "6", "--workdir", str(work)],
        capture_output=True, text=True, env=base_env(), timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for command in ("layra-migrate audit --plan-out plan.yaml", "layra-migrate verify --plan",
                    "layra-migrate rewrite --plan plan.yaml --dry-run",
                    "layra-migrate rewrite --plan plan.yaml --skip-unresolved --yes",
                    "layra-migrate status", "layra-migrate check", "layra-migrate decommission",
                    "layra-migrate rollback --yes"):
        assert command in out, command
    assert "identical: every byte restored" in out
    assert "UNEXPECTED" not in out
    assert (work / "plan.yaml").is_file()
    assert _servers() <= before, "the sandbox left a server running"
