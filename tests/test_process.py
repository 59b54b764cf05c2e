"""The real console process: start-up, stdout/stderr separation and exit codes as a shell
sees them. The command contracts themselves are tested in process (conftest.run_cli);
signals and kill -9 live in test_faults.py / test_engine_safety.py, the installed entry
point in test_packaging.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from layra_migrate import __version__
from tests.conftest import KEY_ENV, assert_no_canary, run_process


def test_version_help_and_a_usage_error_in_a_real_process(tmp_path: Path) -> None:
    r = run_process("--version", cwd=tmp_path)
    assert r.code == 0 and r.stdout.strip() == f"layra-migrate {__version__}"
    r = run_process("--help", cwd=tmp_path)
    assert r.code == 0
    for command in ("audit", "rewrite", "verify", "decommission", "restore", "rollback"):
        assert command in r.stdout
    r = run_process("unlock", cwd=tmp_path)
    assert r.code == 2 and r.stdout == ""
    assert r.stderr.strip() == "error: unlock only releases an expired lock: pass --if-stale"


def test_json_command_in_a_real_process(
    seeded_db: Any, mongo_uri: str, db_name: str, litellm_config: Path, tmp_path: Path
) -> None:
    """One whole command through `python -m layra_migrate`: exactly one JSON object on
    stdout, warnings on stderr, no secret anywhere, and the plan file written."""
    env = {"LAYRA_MIGRATE_MONGO_URI": mongo_uri, "LAYRA_MIGRATE_DB": db_name, **KEY_ENV}
    r = run_process(
        "audit",
        "--json",
        "--litellm-config",
        str(litellm_config),
        "--plan-out",
        "plan.yaml",
        env=env,
        cwd=tmp_path,
    )
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["schema"] == "layra-migrate/audit/v1"
    assert data["plan"] == "plan.yaml" and (tmp_path / "plan.yaml").is_file()
    assert data["via_proxy"] > 0
    assert_no_canary(r.stdout, r.stderr)
    r = run_process("status", "--json", env=env, cwd=tmp_path, timeout=60)
    assert r.code == 0, r.stderr
    assert [m["state"] for m in json.loads(r.stdout)["migrations"]] == ["pending"]
