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


# --- the runbook's structure (issue 12): contents, happy path, one section per command ---

RUNBOOK = REPO / "docs" / "MIGRATION.md"


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces -> '-'."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    in_fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        m = None if in_fence else re.match(r"#{1,6} (.+)", line)
        if m:
            slug = github_slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_every_link_inside_the_runbook_and_developing_resolves() -> None:
    for name in ("MIGRATION.md", "DEVELOPING.md"):
        text = (REPO / "docs" / name).read_text()
        found = anchors(text)
        for target in re.findall(r"\]\(#([^)]+)\)", text):
            assert target in found, f"{name}: link #{target} names no heading"
        for other, target in re.findall(r"\]\(([A-Z_]+\.md)#([^)]+)\)", text):
            assert target in anchors((REPO / "docs" / other).read_text()), (
                f"{name}: link {other}#{target} names no heading"
            )


def test_runbook_opens_with_contents_then_the_happy_path() -> None:
    text = RUNBOOK.read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[:2] == ["Contents", "The happy path"]
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    for h in headings[1:]:
        assert f"(#{github_slug(h)})" in contents, f"contents list misses {h!r}"


def test_every_command_has_its_reference_section() -> None:
    root = typer.main.get_command(app)
    reference = RUNBOOK.read_text().split("## Command reference", 1)[1].split("\n## ", 1)[0]
    sections = re.findall(r"^### (\S+)$", reference, re.M)
    assert set(sections) == set(root.commands), sections  # type: ignore[attr-defined]


def happy_path_invocations() -> list[list[str]]:
    section = RUNBOOK.read_text().split("## The happy path", 1)[1].split("\n## ", 1)[0]
    found = []
    for block in fenced_blocks(section):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("layra-migrate "):
                found.append(shlex.split(line)[1:])
    return found


def test_happy_path_follows_the_root_help_and_uses_only_real_options() -> None:
    """Every command line of the happy path exists as written, in the order the root
    help gives (audit -> verify --plan -> rewrite -> verify -> decommission)."""
    root = typer.main.get_command(app)
    steps = happy_path_invocations()
    for argv in steps:
        cmd = root.commands[argv[0]]  # type: ignore[attr-defined]
        known = {opt for p in cmd.params for opt in p.opts + p.secondary_opts}
        used = {t.split("=", 1)[0] for t in argv[1:] if t.startswith("-")}
        assert used <= known, f"{argv[0]}: {sorted(used - known)} not in --help"
        deprecated = {
            o
            for p in cmd.params
            for o in p.opts
            if (getattr(p, "help", "") or "").startswith("Deprecated")
        }
        assert not used & deprecated, f"{argv[0]}: deprecated option {used & deprecated}"

    def label(argv: list[str]) -> str:
        if argv[0] == "verify":
            return "verify --plan" if "--plan" in argv else "verify"
        return argv[0]

    order: list[str] = []
    for argv in steps:
        if not order or order[-1] != label(argv):
            order.append(label(argv))
    assert order == ["audit", "verify --plan", "rewrite", "verify", "decommission"]
    help_text = str(root.help)
    assert "audit -> verify --plan -> rewrite -> verify ->" in " ".join(help_text.split())
    rewrites = [argv for argv in steps if argv[0] == "rewrite"]
    assert "--dry-run" in rewrites[0] and "--dry-run" not in rewrites[-1]
    assert [t for t in rewrites[0] if t != "--dry-run"] == rewrites[-1], (
        "the dry run and the real run must take the same options"
    )


def test_no_deprecated_option_and_no_wrong_service_name_in_the_runbook() -> None:
    text = RUNBOOK.read_text()
    root = typer.main.get_command(app)
    verify = root.commands["verify"]  # type: ignore[attr-defined]
    deprecated = {
        o
        for p in verify.params
        for o in p.opts
        if (getattr(p, "help", "") or "").startswith("Deprecated")
    }
    assert deprecated == {"--timeout"}
    for argv in documented_invocations():
        if argv and argv[0] == "verify":
            assert "--timeout" not in argv, argv
    # Layra's compose services are `backend` and `frontend` (its docker-compose.yml).
    assert "docker compose stop layra-backend" not in text
    assert "docker compose stop backend frontend" in text


def test_every_option_in_a_reference_table_is_in_that_commands_help() -> None:
    """The option tables of each command's section name only options its --help lists."""
    root = typer.main.get_command(app)
    reference = RUNBOOK.read_text().split("## Command reference", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### (\S+)\n", reference, flags=re.M)
    checked = 0
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        cmd = root.commands[name]  # type: ignore[attr-defined]
        known = {opt for p in cmd.params for opt in p.opts + p.secondary_opts}
        for row in re.findall(r"^\| (`-[^|]*)\|", body, re.M):
            for opt in re.findall(r"`(--?[a-z][a-z-]*)", row):
                checked += 1
                assert opt in known, f"{name}: the table names {opt}, which --help lacks"
    assert checked > 40
