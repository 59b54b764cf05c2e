"""Shared fixtures: a real MongoDB wire-protocol server, one database per test,
realistic Layra data and LiteLLM config, and the CLI runners: ``run_cli`` in process
(Typer's CliRunner), ``run_process`` in a subprocess for what needs a real process.

``LAYRA_MIGRATE_TEST_MONGO_URI`` points the suite at a real mongod instead of
the SecantusDB process started here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from layra_migrate import redact
from layra_migrate.sandbox.layra_data import Dataset, build_dataset, seed_database
from layra_migrate.sandbox.litellm_config import write_litellm_config
from layra_migrate.sandbox.servers import Server, start_mongo

REPO = Path(__file__).resolve().parents[1]

# The real PostgreSQL image and the LiteLLM stack on it, shared by the session's modules.
pytest_plugins = ["tests.postgres_stack"]


def pytest_report_header(config: pytest.Config) -> str:
    uri = os.environ.get("LAYRA_MIGRATE_TEST_MONGO_URI")
    where = f"external {redact.mask_url(uri)}" if uri else "SecantusDB (started per session)"
    return f"mongo: {where}"


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server | None]:
    if os.environ.get("LAYRA_MIGRATE_TEST_MONGO_URI"):
        yield None
        return
    server = start_mongo(tmp_path_factory.mktemp("secantus") / "data")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mongo_uri(mongo_server: Server | None) -> str:
    return os.environ.get("LAYRA_MIGRATE_TEST_MONGO_URI") or (
        mongo_server.uri if mongo_server else ""
    )


@pytest.fixture(scope="session")
def sync_client(mongo_uri: str) -> Iterator[Any]:
    from pymongo import MongoClient

    client: Any = MongoClient(mongo_uri, serverSelectionTimeoutMS=10_000)
    yield client
    client.close()


@pytest.fixture
def db_name(sync_client: Any) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    sync_client.drop_database(name)


@pytest.fixture
def db(sync_client: Any, db_name: str) -> Any:
    return sync_client[db_name]


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return build_dataset(users=40, seed=11)


@pytest.fixture
def seeded_db(db: Any, dataset: Dataset) -> Any:
    seed_database(db, dataset)
    return db


@pytest.fixture
def litellm_config(tmp_path: Path) -> Path:
    return write_litellm_config(tmp_path / "litellm")


KEY_ENV = {
    "DEEPSEEK_API_KEY": "sk-CANARYenvDEEPSEEKkey-0000",
    "GEMINI_API_KEY": "CANARYenvGEMINIkey0000000000000000",
    "OLLAMA_API_KEY": "CANARYenvOLLAMAkey0000000000000000",
    "OPENAI_API_KEY": "sk-proj-CANARYenvOPENAIkey-0000",
    "LITELLM_MASTER_KEY": "sk-CANARYmasterKEY-0001",
}


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LAYRA_MIGRATE_", "MONGODB_", "REDIS_URL"))
    }
    env.update({"NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


def run_process(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    input: str | None = None,
) -> CliResult:
    """Run the real console entry point in a subprocess, as an operator would: for what
    only a real process shows (start-up, signals, kill -9, the installed entry point)."""
    proc = subprocess.run(
        [sys.executable, "-m", "layra_migrate", *args],
        capture_output=True,
        text=True,
        env=base_env(env),
        cwd=cwd or REPO,
        timeout=timeout,
        input=input,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    input: str | None = None,
) -> CliResult:
    """Run one command in this process through Typer's CliRunner: the same Typer app,
    options, exit codes, stdout and stderr as the console entry point, without a fresh
    interpreter per call. What a process would not share with the next one is isolated:
    the environment (as ``base_env`` builds it), the working directory, the logging
    handlers the command installs and the registry of secrets it learnt.
    ``timeout`` is kept for the subprocess runner's signature (commands bound their own
    waits)."""
    full = base_env(env)
    delta: dict[str, str | None] = {k: None for k in os.environ if k not in full}
    delta.update({k: v for k, v in full.items() if os.environ.get(k) != v})
    if _loop_running():
        # An async test calling the CLI: asyncio.run() needs a thread without a loop.
        box: list[CliResult] = []
        worker = threading.Thread(
            target=lambda: box.append(_invoke(args, delta, cwd or REPO, input)), daemon=True
        )
        worker.start()
        worker.join()
        return box[0]
    return _invoke(args, delta, cwd or REPO, input)


def _loop_running() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_cwd_lock = threading.Lock()


def _invoke(
    args: tuple[str, ...], env: dict[str, str | None], cwd: Path, input: str | None
) -> CliResult:
    import logging
    import traceback

    from typer.testing import CliRunner

    from layra_migrate.cli import app

    loggers = [logging.getLogger(), logging.getLogger("layra_migrate")]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    secrets = set(redact._secrets)
    with _cwd_lock:
        previous = os.getcwd()
        os.chdir(cwd)
        try:
            result = CliRunner().invoke(app, list(args), input=input, env=env)
        finally:
            os.chdir(previous)
            for lg, handlers, level, propagate in saved:
                lg.handlers[:] = handlers
                lg.setLevel(level)
                lg.propagate = propagate
            with redact._lock:
                redact._secrets.clear()
                redact._secrets.update(secrets)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # What the interpreter would have printed: an exception escaped the CLI's wrapper.
        stderr += "".join(traceback.format_exception(result.exception))
    return CliResult(result.exit_code, result.stdout, stderr)


@pytest.fixture
def cli(mongo_uri: str, db_name: str, tmp_path: Path) -> Any:
    """``cli("audit", "--json")`` against this test's database, from an empty cwd
    (in process: :func:`run_cli`)."""

    def _run(
        *args: str, env: dict[str, str] | None = None, mongo: bool = True, **kw: Any
    ) -> CliResult:
        extra = {"LAYRA_MIGRATE_MONGO_URI": mongo_uri, "LAYRA_MIGRATE_DB": db_name} if mongo else {}
        extra.update(env or {})
        return run_cli(*args, env=extra, cwd=kw.pop("cwd", tmp_path), **kw)

    return _run


ALL_CANARIES = list(KEY_ENV.values()) + [
    "CANARYvirtualKEY",
    "CANARYmasterKEY",
    "CANARYdirect",
    "CANARYenv",
    "CANARYpass",
]


def assert_no_canary(*texts: str) -> None:
    for text in texts:
        for canary in ALL_CANARIES:
            assert canary not in text, f"secret canary {canary[:12]}... leaked"


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    """A real Docker engine for the session (tests/docker_engine.py), shared by the
    decommission and sandbox tests: skips with the reason without one (fails with CI=true)."""
    from tests.docker_engine import start_engine

    yield from start_engine()
