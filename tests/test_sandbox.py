"""The Quick start job: all four phases against the sandbox, exit 0, nothing left running.

Once without Docker (the job says decommission was shown as a dry run only), once on
the session's real Docker engine (a real decommission and restore of a fake LiteLLM
stack; it skips exactly when the Docker tests skip).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from layra_migrate.sandbox.docker_stack import SANDBOX_DB_PASSWORD, SANDBOX_ENV, SANDBOX_LABEL
from tests.conftest import base_env


def _servers(work: Path) -> set[int]:
    """Processes of this job (their command line names its work folder). Only this job's:
    another test session on the same machine runs sandbox jobs of its own."""
    found = set()
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info.get("cmdline") or [])
        if str(work) in cmd:
            found.add(p.info["pid"])
    return found


def _run_job(work: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "layra_migrate.sandbox", "--users", "6", "--workdir", str(work)],
        capture_output=True,
        text=True,
        env=base_env(env),
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


def _exits(out: str) -> list[tuple[str, int]]:
    """(command, exit code) of every step the job ran, in order."""
    steps: list[tuple[str, int]] = []
    command = None
    for line in out.splitlines():
        if line.startswith("$ layra-migrate "):
            command = line[2:]
        elif command and (m := re.match(r"exit (\d+) \(expected", line)):
            steps.append((command, int(m.group(1))))
            command = None
    return steps


def _assert_common(out: str, work: Path) -> None:
    for command in (
        "layra-migrate audit --plan-out plan.yaml",
        "layra-migrate verify --plan",
        "layra-migrate rewrite --plan plan.yaml --dry-run",
        "layra-migrate rewrite --plan plan.yaml --skip-unresolved --yes",
        "layra-migrate status",
        "layra-migrate check",
        "layra-migrate decommission",
        "layra-migrate rollback --yes",
    ):
        assert command in out, command
    assert "identical: every byte restored" in out
    assert "UNEXPECTED" not in out
    assert (work / "plan.yaml").is_file()
    # rollback is the last command, then the exactness check
    assert _exits(out)[-1] == ("layra-migrate rollback --yes", 0)
    assert out.index("rollback --yes") < out.index("identical: every byte restored")


def test_sandbox_job_runs_every_phase_and_cleans_up(tmp_path: Path) -> None:
    work = tmp_path / "sandbox-work"
    before = _servers(work)
    out = _run_job(work, {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    _assert_common(out, work)
    assert "Docker is not reachable here (DOCKER_HOST=" in out
    assert "decommission and restore were skipped" in out
    assert "refuses while references remain" not in out  # exit 3 is not a refusal
    assert "layra-migrate restore" not in out
    assert _servers(work) <= before, "the sandbox left a server running"


@pytest.mark.docker
def test_sandbox_job_decommissions_and_restores_on_docker(engine: Any, tmp_path: Path) -> None:
    work = tmp_path / "sandbox-work"
    before = _servers(work)
    out = _run_job(work, {"DOCKER_HOST": engine.host})
    _assert_common(out, work)
    m = re.search(r"compose project (layra-sandbox-([0-9a-f]{8}))", out)
    assert m, out[-3000:]
    project, run_id = m.group(1), m.group(2)
    steps = _exits(out)
    docker_steps = [
        (c, code)
        for c, code in steps
        if c.startswith(("layra-migrate decommission", "layra-migrate restore"))
    ]
    assert docker_steps == [
        (f"layra-migrate decommission --project {project} --dry-run", 4),
        (
            f"layra-migrate decommission --project {project} --archive-dir archive --yes --force "
            "--reason 'sandbox: voyage-3 and claude-sonnet-4 are migrated separately'",
            0,
        ),
        ("layra-migrate restore archive --yes", 0),
    ], docker_steps
    commands = [c for c, _ in steps]
    assert commands.index("layra-migrate restore archive --yes") < commands.index(
        "layra-migrate rollback --yes"
    )
    assert "still point at the proxy" in out
    assert "The stack is back to its recorded pre-state." in out
    assert "nothing of the sandbox is left on the Docker engine" in out
    assert "dry run only" not in out
    assert (work / "archive" / "manifest.json").is_file()
    assert not (work / "archive" / "INCOMPLETE").exists()
    for secret in [*SANDBOX_ENV.values(), SANDBOX_DB_PASSWORD]:
        assert secret not in out

    api = engine.client.api
    for flt in ({"label": SANDBOX_LABEL}, {"label": f"com.docker.compose.project={project}"}):
        assert not api.containers(all=True, filters=flt)
        assert not api.networks(filters=flt)
        assert not (api.volumes(filters=flt) or {}).get("Volumes")
    assert not [
        c for c in api.containers(all=True) if any(project in n or run_id in n for n in c["Names"])
    ]
    assert not [n["Name"] for n in api.networks() if project in n["Name"]]
    assert not [
        v["Name"]
        for v in (api.volumes() or {}).get("Volumes") or []
        if project in v["Name"] or run_id in v["Name"]
    ]
    assert not [
        t
        for i in api.images(all=True)
        for t in i.get("RepoTags") or []
        if t.startswith("layra-sandbox-")
    ]
    assert _servers(work) <= before, "the sandbox left a server running"


@pytest.mark.docker
def test_sandbox_starts_a_private_engine_when_none_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No engine answers and DOCKER_HOST is unset: as root with dockerd and a static
    busybox, the job starts its own dockerd, makes the stack there, and at the end
    removes the stack and stops the daemon."""
    from contextlib import ExitStack

    from rich.console import Console

    from layra_migrate.sandbox import private_engine as pe
    from layra_migrate.sandbox.run import docker_reachable, private_engine, start_docker_stack

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    if docker_reachable():
        pytest.skip("a Docker engine already answers on the default socket")
    reason = pe.why_not()
    if reason:
        pytest.skip(reason)
    console = Console(file=open(tmp_path / "out.txt", "w"), width=200)  # noqa: SIM115
    with ExitStack() as outer:
        host, why = private_engine(console, outer)
        assert host and not why, why
        assert host.startswith("unix:///tmp/lmd-")
        daemons = [
            p
            for p in psutil.process_iter(["pid", "cmdline"])
            if host.removeprefix("unix://") in " ".join(p.info.get("cmdline") or [])
        ]
        assert len(daemons) == 1
        with ExitStack() as inner:
            sb = start_docker_stack(console, tmp_path, inner, host)
            assert sb is not None
            names = {c.name for c in sb.client.containers.list(all=True)}
            assert any(sb.project in n for n in names), names
        assert sb.leftovers == []
    console.file.close()
    assert not daemons[0].is_running(), "the private dockerd was left running"
    assert not Path(host.removeprefix("unix://")).exists()


def test_no_private_engine_when_docker_host_is_chosen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from contextlib import ExitStack

    from rich.console import Console

    from layra_migrate.sandbox.run import private_engine

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with ExitStack() as cleanup:
        host, why = private_engine(Console(file=open(tmp_path / "o", "w")), cleanup)  # noqa: SIM115
    assert host is None and "DOCKER_HOST=unix://" in why and "not set" in why
