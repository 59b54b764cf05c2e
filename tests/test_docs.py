"""The README's Quick start and the runbook stay true to the code."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import typer.main

from layra_migrate.cli import app

REPO = Path(__file__).resolve().parents[1]


def fenced_blocks(markdown: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"```[a-z]*\n(.*?)```", markdown, re.S)]


def test_quick_start_is_two_commands_and_ci_runs_the_second() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    blocks = fenced_blocks(section)
    assert blocks[0] == "./scripts/demo.sh"
    assert blocks[1] == "./scripts/test.sh"
    ci = (REPO / ".ci" / "run").read_text()
    assert "./scripts/test.sh" in ci.split("\n#", 1)[0] or "exec ./scripts/test.sh" in ci


def documented_invocations() -> list[list[str]]:
    text = (REPO / "docs" / "MIGRATION.md").read_text()
    found = []
    for block in fenced_blocks(text):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("layra-migrate "):
                try:
                    found.append(shlex.split(line.split(" #", 1)[0])[1:])
                except ValueError:
                    continue
    return found


def test_every_documented_command_and_option_exists() -> None:
    root = typer.main.get_command(app)
    assert hasattr(root, "commands")
    invocations = documented_invocations()
    documented = {argv[0] for argv in invocations if argv}
    missing = set(root.commands) - documented  # type: ignore[attr-defined]
    assert not missing, f"commands without a documented invocation: {sorted(missing)}"
    for argv in invocations:
        if not argv or argv[0].startswith("-"):
            continue
        cmd = root.commands.get(argv[0])  # type: ignore[attr-defined]
        assert cmd is not None, f"docs mention unknown command {argv[0]!r}"
        known = {opt for p in cmd.params for opt in p.opts + p.secondary_opts}
        for token in argv[1:]:
            if token.startswith("--"):
                assert token.split("=", 1)[0] in known, f"{argv[0]} has no option {token}"
