"""`history` and the truthful `status`: real CLI, real wire server."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from layra_migrate.engine.discovery import default_dir
from tests.conftest import KEY_ENV, assert_no_canary
from tests.rewrite_support import write_plan
from tests.schema_support import validate


def _runs(cli: Any) -> list[dict[str, Any]]:
    r = cli("history", "--json")
    assert r.code == 0, r.stderr
    data = r.json()
    validate("history", data)
    return list(data["runs"])


def test_history_lists_every_run_newest_first_and_status_shows_the_latest(
    seeded_db: Any, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    assert _runs(cli) == []
    empty = cli("history")
    assert empty.code == 0 and "No recorded run" in empty.stdout

    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    folder = tmp_path / "migrations"
    folder.mkdir()
    shutil.copy(default_dir() / "0001_litellm_to_direct.py", folder)
    args = [
        "rewrite",
        "--plan",
        str(plan),
        "--yes",
        "--skip-unresolved",
        "--migrations-dir",
        str(folder),
    ]
    r = cli(*args, env=KEY_ENV)
    assert r.code == 0, r.stderr
    # an accepted change of the applied file
    with (folder / "0001_litellm_to_direct.py").open("a") as fh:
        fh.write("\n# a harmless edit\n")
    r = cli(*args, "--accept-changed", "0001", "--reason", "comment only", env=KEY_ENV)
    assert r.code == 0, r.stderr
    # a forced rollback
    rb = cli("rollback", "--yes", "--force", "--migrations-dir", str(folder))
    assert rb.code == 0, rb.stderr

    runs = _runs(cli)
    commands = [run["command"] for run in runs]
    assert commands == ["rollback", "accept_changed", "rewrite"], commands
    rollback, accepted, rewrite = runs
    starts = [datetime.fromisoformat(run["started_at"]) for run in runs]
    assert starts == sorted(starts, reverse=True)
    assert all(s.utcoffset() is not None and s.utcoffset().total_seconds() == 0 for s in starts)
    assert rewrite["outcome"] == "applied" and rewrite["target"] == "0001_litellm_to_direct"
    assert rewrite["counts"]["documents"] > 0 and rewrite["duration_s"] is not None
    assert "@" in rewrite["by"] and rewrite["forced"] is None
    assert accepted["outcome"] == "accepted" and accepted["reason"] == "comment only"
    assert rollback["outcome"] == "rolled_back" and rollback["forced"] is True
    assert rollback["counts"]["restored"] > 0

    human = cli("history")
    assert human.code == 0, human.stderr
    for word in ("rollback", "accept_changed", "rewrite", "FORCED", "comment only", "UTC"):
        assert word in human.stdout, word
    assert_no_canary(human.stdout, human.stderr)
    narrow = cli("history", env={"COLUMNS": "80"})
    heads = [line for line in narrow.stdout.splitlines() if line.startswith("20")]
    assert len(heads) == 3 and all("0001_litellm_to_direct" in line for line in heads), heads
    assert cli("history", "--json", "--limit", "1").json()["runs"] == [rollback]

    # status: the latest run is the rollback, not the forward run
    st = cli("status", "--json", "--migrations-dir", str(folder))
    row = st.json()["migrations"][0]
    assert row["state"] == "rolled_back" and row["last_run"]["direction"] == "down"
    assert row["last_run"]["run"] == rollback["run"]
    assert row["last_run"]["counts"]["restored"] == rollback["counts"]["restored"]
    text = cli("status", "--migrations-dir", str(folder))
    assert "rolled_back" in text.stdout


def test_history_reads_older_records_without_the_new_fields(seeded_db: Any, cli: Any) -> None:
    """Records written before `command`, `force`, `by` (decommission) existed."""
    seeded_db["layra_migrate_ledger"].insert_many(
        [
            {
                "_id": "old-up",
                "migration": "0001_litellm_to_direct",
                "direction": "up",
                "status": "applied",
                "run_no": 1,
                "checksum": "abc",
                "started_at": datetime(2026, 1, 2, 3, 4, 5),
                "by": "ops@old",
                "finished_at": datetime(2026, 1, 2, 3, 4, 9),
                "counts": {"documents": 7},
            },
            {
                "_id": "old-down",
                "migration": "0001_litellm_to_direct",
                "direction": "down",
                "status": "rolled_back",
                "run_no": 2,
                "checksum": "abc",
                "started_at": datetime(2026, 1, 3, 0, 0, 0),
                "by": "ops@old",
                "counts": {"restored": 7, "forced": 2},
            },
        ]
    )
    seeded_db["layra_migrate_decommission"].insert_one(
        {
            "kind": "decommission",
            "project": "litellm",
            "started_at": "2026-01-04T00:00:00+00:00",
            "finished_at": "2026-01-04T00:01:00+00:00",
            "exit_code": 0,
            "rolled_back": False,
            "containers": [{"name": "a"}, {"name": "b"}],
        }
    )
    runs = _runs(cli)
    assert [r["command"] for r in runs] == ["decommission", "rollback", "rewrite"]
    deco, down, up = runs
    assert deco["by"] is None and deco["duration_s"] == 60.0 and deco["outcome"] == "done"
    assert deco["counts"] == {"containers": 2}
    assert down["forced"] is True and down["finished_at"] is None and down["duration_s"] is None
    assert up["duration_s"] == 4.0 and up["started_at"] == "2026-01-02T03:04:05+00:00"
