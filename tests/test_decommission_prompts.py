"""decommission / restore against the real Docker engine: the prompt names the stack, the
Docker host and what it acts on ("n" touches nothing); --json validates against the
published schemas; the runs appear in `history`; archive writing shows progress."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from layra_migrate.render import Output
from tests.conftest import CliResult
from tests.docker_engine import Engine, FakeStack, destroy_stack, make_stack, state
from tests.schema_support import validate

pytestmark = pytest.mark.docker


@pytest.fixture
def stack(engine: Engine, tmp_path: Path) -> Iterator[FakeStack]:
    d = tmp_path / "stack"
    d.mkdir()
    s = make_stack(engine.client, d)
    yield s
    destroy_stack(engine.client, s)


@pytest.fixture
def dcli(cli: Any, engine: Engine) -> Callable[..., CliResult]:
    def _run(*args: str, env: dict[str, str] | None = None, **kw: Any) -> CliResult:
        return cli(*args, env={"DOCKER_HOST": engine.host, **(env or {})}, **kw)

    return _run


def test_prompts_schemas_history_and_archive_progress(
    engine: Engine,
    stack: FakeStack,
    dcli: Any,
    db: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = stack
    before = {n: state(engine.client, n) for n in (s.proxy, s.db, s.cache)}
    arch = tmp_path / "arch"
    dry = dcli("decommission", "--project", s.project, "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    validate("decommission", dry.json())

    with monkeypatch.context() as m:
        m.setattr(Output, "interactive", property(lambda self: True))
        r = dcli("decommission", "--project", s.project, "--archive-dir", str(arch), input="no\n")
    assert r.code == 4, r.stderr
    prompt = r.stderr[r.stderr.index("This stops and archives") :]
    assert f"the {s.project!r} stack on Docker host {engine.host}:" in prompt
    for name in (s.proxy, s.db, s.cache):
        assert name in prompt
    assert f"archive: {arch}" in prompt and f"Type {s.project!r} to continue" in prompt
    assert {n: state(engine.client, n) for n in (s.proxy, s.db, s.cache)} == before
    assert not arch.exists()

    r = dcli(
        "decommission",
        "--project",
        s.project,
        "--archive-dir",
        str(arch),
        "--yes",
        env={"LAYRA_MIGRATE_PROGRESS_INTERVAL": "0.001"},
    )
    assert r.code == 0, r.stderr
    assert "progress: archive (bytes)" in r.stderr, r.stderr

    with monkeypatch.context() as m:
        m.setattr(Output, "interactive", property(lambda self: True))
        r = dcli("restore", str(arch), input="no\n")
    assert r.code == 4, r.stderr
    prompt = r.stderr[r.stderr.index("This restores") :]
    assert f"the {s.project!r} stack on Docker host {engine.host} from {arch}" in prompt
    assert all(n in prompt for n in (s.proxy, s.db, s.cache)) and "volume(s)" in prompt
    assert state(engine.client, s.proxy)[0] == "exited"

    r = dcli("restore", str(arch), "--yes", "--json")
    assert r.code == 0, r.stderr
    validate("restore", r.json())

    h = dcli("history", "--json")
    assert h.code == 0, h.stderr
    validate("history", h.json())
    runs = h.json()["runs"]
    assert [(x["command"], x["target"], x["outcome"]) for x in runs[:2]] == [
        ("restore", s.project, "done"),
        ("decommission", s.project, "done"),
    ]
    assert all("@" in (x["by"] or "") and x["duration_s"] is not None for x in runs[:2])
