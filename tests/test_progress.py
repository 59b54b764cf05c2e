"""Progress: the periodic line on stderr without a terminal, nothing with --json."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

from layra_migrate.views.progress import LineProgress, interval_from_env
from tests.conftest import KEY_ENV
from tests.rewrite_support import write_plan

FAST = {"LAYRA_MIGRATE_PROGRESS_INTERVAL": "0.001"}


def test_line_progress_reports_counts_total_and_eta() -> None:
    out = io.StringIO()
    with LineProgress(out, interval_s=0.01) as p:
        p.start("model_config", 1000)
        p.advance("model_config", 250)
        time.sleep(0.1)
        p.advance("model_config", 750)
        p.finish("model_config")
        p.start("quick", 5)  # shorter than the interval: never reported
        p.finish("quick")
    lines = out.getvalue().splitlines()
    assert any(
        line.startswith("progress: model_config 250/1,000 (25%)") and "ETA " in line
        for line in lines
    ), lines
    assert lines[-1].startswith("progress: model_config done, 1,000 in ")
    assert not any("quick" in line for line in lines)


def test_interval_from_env() -> None:
    assert interval_from_env(None) == 5.0
    assert interval_from_env("0.5") == 0.5
    assert interval_from_env("nope") == 5.0 and interval_from_env("-1") == 5.0


def test_pipe_gets_periodic_lines_and_json_stays_one_object(
    seeded_db: Any, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    r = cli("audit", "--litellm-config", str(litellm_config), env={**KEY_ENV, **FAST})
    assert r.code == 0, r.stderr
    assert "progress: audit" in r.stderr, r.stderr

    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    r = cli("rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", env={**KEY_ENV, **FAST})
    assert r.code == 0, r.stderr
    reported = {line.split()[1] for line in r.stderr.splitlines() if line.startswith("progress: ")}
    # the preflight's audit, the documents per place, the post-condition
    assert {"audit", "model_config", "post-condition"} <= reported, reported

    r = cli("rollback", "--dry-run", env=FAST)  # the journal scan
    assert r.code == 0, r.stderr
    assert "progress: 0001_litellm_to_direct: rollback" in r.stderr, r.stderr

    r = cli("rollback", "--yes", "--json", env=FAST)
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["schema"] == "layra-migrate/rollback/v1"
    assert len(r.stdout.strip().splitlines()) == 1
    assert "progress:" not in r.stderr and "progress:" not in r.stdout

    r = cli("check", "--plan", str(plan), "--json", env={**KEY_ENV, **FAST})
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["ok"] is True and "progress:" not in r.stderr
    r = cli("check", "--plan", str(plan), env={**KEY_ENV, **FAST})
    assert r.code == 0, r.stderr
    for task in ("audit", "model_config", "check: copy", "check: fingerprint"):
        assert f"progress: {task}" in r.stderr, (task, r.stderr)


def test_terminal_gets_a_rich_bar_with_eta_and_json_gets_nothing() -> None:
    from rich.console import Console

    from layra_migrate.render import Output
    from layra_migrate.views.progress import RichProgress, progress_display

    assert progress_display(Output(json_mode=True)).__enter__() is None
    out = Output()
    buf = io.StringIO()
    out.err = Console(file=buf, force_terminal=True, width=120)
    display = progress_display(out)
    assert isinstance(display, RichProgress)
    with display as p:
        p.start("model_config", 100)
        p.advance("model_config", 40)
        time.sleep(0.05)
        p.advance("model_config", 60)
        p.finish("model_config")
    text = buf.getvalue()
    assert "model_config" in text and "ETA" in text and "100/100" in text
