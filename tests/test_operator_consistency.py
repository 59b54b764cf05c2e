"""Operator-facing consistency: where `new` writes, option names and metavars, the root
command order, JSON time zones, fast failure on a refused connection, the Redis line.

In process (Typer's CliRunner), against the real MongoDB wire server where one is needed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from layra_migrate.cli import app
from layra_migrate.cli.app import PHASE_ORDER
from layra_migrate.engine.discovery import default_dir, discover

runner = CliRunner()
CLEAN = {k: None for k in os.environ if k.startswith(("LAYRA_MIGRATE_", "MONGODB_"))}


def invoke(*args: str, cwd: Path | None = None, **env: str | None) -> Any:
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return runner.invoke(
            app, list(args), env={**CLEAN, "COLUMNS": "200", **env}, catch_exceptions=False
        )
    finally:
        os.chdir(old)


# -- new ------------------------------------------------------------------------------------


def test_new_writes_to_the_projects_migrations_folder(tmp_path: Path) -> None:
    bundled = sorted(p.name for p in default_dir().glob("[0-9][0-9][0-9][0-9]_*.py"))
    assert bundled, "the package ships migrations"
    top = int(bundled[-1][:4])

    r = invoke("new", "point gemini at vertex", cwd=tmp_path)
    assert r.exit_code == 0, r.stderr
    folder = tmp_path / "migrations"
    created = folder / f"{top + 1:04d}_point_gemini_at_vertex.py"
    assert created.is_file(), sorted(p.name for p in folder.iterdir())
    # the fresh folder holds the whole set: the bundled files, byte for byte
    for name in bundled:
        assert (folder / name).read_bytes() == (default_dir() / name).read_bytes()
    assert [m.id for m in discover(folder)][-1] == created.stem  # a valid, runnable set
    assert str(created.relative_to(tmp_path)) in r.stdout

    r = invoke("new", "second one", "--json", cwd=tmp_path)
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert Path(data["path"]).name == f"{top + 2:04d}_second_one.py" and data["copied"] == []
    assert len({p.name[:4] for p in folder.glob("*.py")}) == len(list(folder.glob("*.py")))


def test_new_numbers_after_bundled_and_project_files(tmp_path: Path) -> None:
    folder = tmp_path / "ops"
    folder.mkdir()
    top = max(int(p.name[:4]) for p in default_dir().glob("[0-9][0-9][0-9][0-9]_*.py"))
    (folder / f"{top + 6:04d}_later.py").write_text("")  # a project already further on
    r = invoke("new", "next", "--migrations-dir", str(folder))
    assert r.exit_code == 0, r.stderr
    assert (folder / f"{top + 7:04d}_next.py").is_file()
    assert not any(p.name.startswith("0001") for p in folder.iterdir())  # no copy: not fresh


@pytest.mark.parametrize("where", ["bundled", "package", "cwd_is_the_checkout"])
def test_new_refuses_the_package_folder(where: str, tmp_path: Path) -> None:
    import layra_migrate

    before = {p: p.stat().st_mtime_ns for p in default_dir().iterdir()}
    if where == "bundled":
        r = invoke("new", "x", "--migrations-dir", str(default_dir()), cwd=tmp_path)
    elif where == "package":
        r = invoke(
            "new",
            "x",
            cwd=tmp_path,
            LAYRA_MIGRATE_MIGRATIONS_DIR=str(Path(layra_migrate.__file__).parent),
        )
    else:  # ./migrations of a source checkout is the bundled folder itself
        if (default_dir().parent / "migrations") != default_dir():
            pytest.skip("installed from a wheel: no checkout whose ./migrations is bundled")
        r = invoke("new", "x", cwd=default_dir().parent)
    assert r.exit_code == 2, r.stdout + r.stderr
    assert "package" in r.stderr and "--migrations-dir" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in default_dir().iterdir()} == before


# -- options, metavars, command order -------------------------------------------------------


def _commands() -> list[str]:
    r = invoke("--help")
    section = r.stdout.split("Commands:", 1)[1]
    return re.findall(r"^\s{2}(\w+)\s", section, re.M)


def test_root_help_lists_commands_in_phase_order() -> None:
    names = _commands()
    expected = [n for n in PHASE_ORDER if n in names]
    assert names[: len(expected)] == expected
    assert names[0] == "audit" and names.index("verify") < names.index("rewrite")
    assert names.index("restore") > names.index("decommission")


def test_metavars_are_readable_words() -> None:
    for name in _commands():
        r = invoke(name, "--help")
        assert r.exit_code == 0
        opts = r.stdout.split("Options:", 1)[1]
        assert "<list[" not in opts and "range>" not in opts, f"{name}: {opts}"
        for metavar in re.findall(r"^\s+(?:-\w, )?--[\w-]+ (\S+)\s", opts, re.M):
            assert re.fullmatch(r"[A-Z_]+", metavar), f"{name}: metavar {metavar!r}"


def test_verify_probe_timeout_and_its_deprecated_alias(db: Any, mongo_uri: str) -> None:
    env = {"LAYRA_MIGRATE_MONGO_URI": mongo_uri, "LAYRA_MIGRATE_DB": db.name}
    r = invoke("verify", "--probe-timeout", "3", "--json", **env)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["timeout_s"] == 3 and "deprecated" not in r.stderr
    r = invoke("verify", "--timeout", "4", "--json", **env)  # scripts written for 0.1 still run
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["timeout_s"] == 4
    assert "--timeout is deprecated: use --probe-timeout" in r.stderr
    r = invoke("verify", "--timeout", "4", "--probe-timeout", "3", **env)
    assert r.exit_code == 2 and "pass one" in r.stderr
    r = invoke("verify", "--probe-timeout", "0", **env)
    assert r.exit_code == 2 and "--probe-timeout" in r.stderr


# -- JSON timestamps and fields -------------------------------------------------------------

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def _timestamps(obj: Any) -> Iterator[str]:
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _timestamps(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _timestamps(v)
    elif isinstance(obj, str) and ISO.match(obj):
        yield obj


def test_json_timestamps_carry_a_time_zone(
    seeded_db: Any, mongo_uri: str, litellm_config: Path, tmp_path: Path
) -> None:
    from tests.conftest import KEY_ENV

    env = {"LAYRA_MIGRATE_MONGO_URI": mongo_uri, "LAYRA_MIGRATE_DB": seeded_db.name, **KEY_ENV}
    plan = tmp_path / "plan.yaml"
    r = invoke(
        "audit", "--json", "--litellm-config", str(litellm_config), "--plan-out", str(plan), **env
    )
    assert r.exit_code == 0, r.stderr
    audit = json.loads(r.stdout)
    # resolution.notes: always there, a list, even when empty
    assert all(isinstance(m["resolution"]["notes"], list) for m in audit["models"])
    assert any(m["resolution"]["notes"] == [] for m in audit["models"])
    r = invoke("rewrite", "--plan", str(plan), "--skip-unresolved", "--yes", "--json", **env)
    assert r.exit_code == 0, r.stderr
    status = json.loads(invoke("status", "--json", **env).stdout)
    stamps = list(_timestamps(status)) + list(_timestamps(json.loads(r.stdout)))
    assert stamps, status  # status shows when the run started and finished
    for stamp in stamps:
        assert stamp.endswith(("+00:00", "Z")), stamp


def test_render_dumps_naive_datetimes_as_utc() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from layra_migrate.render import dumps

    out = json.loads(
        dumps(
            {
                "a": datetime(2026, 11, 30, 12, 0),
                "b": datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
                "c": datetime(2026, 11, 30, 13, 0, tzinfo=timezone(timedelta(hours=1))),
            }
        )
    )
    assert out == {
        "a": "2026-11-30T12:00:00+00:00",
        "b": "2026-11-30T12:00:00+00:00",
        "c": "2026-11-30T13:00:00+01:00",
    }


# -- a refused connection fails at once -----------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refused_mongodb_fails_at_once_not_after_the_timeout(tmp_path: Path) -> None:
    port = _closed_port()
    started = time.monotonic()
    r = invoke(
        "status",
        "--timeout",
        "20",
        "--json",
        LAYRA_MIGRATE_MONGO_URI=f"mongodb://ops:CANARYpass0@127.0.0.1:{port}",
        LAYRA_MIGRATE_DB="layra",
    )
    elapsed = time.monotonic() - started
    assert r.exit_code == 3, r.stderr
    assert elapsed < 10, f"waited {elapsed:.1f}s of the 20s timeout on a refused connection"
    assert "connection refused" in r.stderr and "CANARYpass0" not in r.stderr + r.stdout
    assert len(r.stderr.strip().splitlines()) == 1
    assert json.loads(r.stdout)["exit_code"] == 3


async def test_refused_helper_names_only_dead_hosts(mongo_uri: str) -> None:
    from layra_migrate.mongo import refused

    port = _closed_port()
    assert await refused(f"mongodb://127.0.0.1:{port}", 5) == "connection refused"
    assert await refused(f"mongodb://127.0.0.1:{port},{mongo_uri.split('//')[1]}", 5) is None
    assert await refused(mongo_uri, 5) is None
    assert await refused("mongodb+srv://cluster.example.com", 5) is None  # DNS seed list


# -- the Redis line ------------------------------------------------------------------------


def test_redis_line_reads_as_deleted_and_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from layra_migrate.engine.cache import CacheResult
    from layra_migrate.render import Output
    from layra_migrate.views.rewrite import render_cache

    buf = io.StringIO()
    monkeypatch.setattr("sys.stdout", buf)
    render_cache(CacheResult(None, deleted=38, requested=88), 88, Output(), dry_run=False)
    assert buf.getvalue().strip() == "Redis: 38 cached key(s) deleted, 50 were not cached"


async def test_refused_redis_fails_at_once() -> None:
    from layra_migrate.engine.cache import RedisCache
    from layra_migrate.errors import UnreachableError

    started = time.monotonic()
    with pytest.raises(UnreachableError, match="Redis at .* is unreachable"):
        await RedisCache(f"redis://:CANARYpass1@127.0.0.1:{_closed_port()}/0", 20).connect()
    assert time.monotonic() - started < 10


def test_refused_docker_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from layra_migrate.decommission.client import connect
    from layra_migrate.errors import UnreachableError

    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{_closed_port()}")
    started = time.monotonic()
    with pytest.raises(UnreachableError, match="Docker engine at .* is unreachable"):
        connect(timeout_s=20)
    assert time.monotonic() - started < 10
