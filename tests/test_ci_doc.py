"""docs/CI.md: the ready CI jobs parse, and every layra-migrate line in them is a real
command with real options (the jobs themselves run on GitHub/GitLab, not here)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import typer.main
import yaml

from layra_migrate.cli import app

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "CI.md"


def yaml_blocks() -> list[Any]:
    text = DOC.read_text()
    return [yaml.safe_load(m.group(1)) for m in re.finditer(r"```yaml\n(.*?)```", text, re.S)]


def commands(job_text: str) -> list[list[str]]:
    found = []
    for line in job_text.replace("\\\n", " ").splitlines():
        m = re.search(r"(?:^|[\s/])layra-migrate (\S.*?)(?:\s*>.*)?$", line)
        if m and not line.lstrip().startswith("#"):
            found.append(shlex.split(m.group(1)))
    return found


def test_ci_page_has_both_jobs_and_they_parse() -> None:
    github, gitlab = yaml_blocks()
    job = github["jobs"]["check"]
    assert "mongo" in job["services"] and job["services"]["mongo"]["image"].startswith("mongo:")
    steps = "\n".join(s.get("run", "") for s in job["steps"])
    assert "mongorestore" in steps and "layra-migrate check --plan plan.yaml" in steps
    assert job["env"]["LAYRA_MIGRATE_MONGO_URI"].startswith("mongodb://")
    lab = gitlab["reversibility"]
    assert lab["services"][0]["name"].startswith("mongo:")
    script = "\n".join(lab["script"])
    assert "mongorestore" in script and "layra-migrate check --plan plan.yaml" in script


def test_every_command_in_the_ci_page_exists() -> None:
    root = typer.main.get_command(app)
    text = DOC.read_text()
    found = commands(text)
    assert found, "no layra-migrate command in docs/CI.md"
    for argv in found:
        cmd = root.commands.get(argv[0])  # type: ignore[attr-defined]
        assert cmd is not None, f"docs/CI.md mentions unknown command {argv[0]!r}"
        known = {opt for p in cmd.params for opt in p.opts + p.secondary_opts}
        for token in argv[1:]:
            if token.startswith("--"):
                assert token.split("=", 1)[0] in known, f"{argv[0]} has no option {token}"


def test_ci_page_is_linked_from_readme_and_runbook() -> None:
    assert "docs/CI.md" in (REPO / "README.md").read_text()
    assert "(CI.md)" in (REPO / "docs" / "MIGRATION.md").read_text()
