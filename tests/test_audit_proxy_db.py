"""`audit` reads the models stored in the proxy's real PostgreSQL (store_model_in_db).

The stack's database is the real PostgreSQL with LiteLLM's ``LiteLLM_ProxyModelTable``
(tests/postgres_stack.py). Layra's data references two names defined only there (one
of them would match config.yaml's ``openai/*`` wildcard: the wrong provider) and one
name config.yaml routes. ``litellm_params`` holds a canary that must never be printed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from layra_migrate.decommission.dump import run_exec
from layra_migrate.decommission.roles import pg_login
from layra_migrate.sandbox import litellm_db as ldb
from tests.conftest import KEY_ENV, CliResult, assert_no_canary
from tests.docker_engine import DB_PASSWORD, Engine
from tests.postgres_stack import PARAM_CANARY, PgImage, PgStack

pytestmark = pytest.mark.docker


PROXY_URL = "http://litellm-proxy:4000/v1"
REFERENCED = ["kimi-k2-ui", "openai/gpt-4o-mini-ui", "deepseek-reasoner"]


@pytest.fixture(scope="module")
def layra_db(sync_client: Any) -> Iterator[str]:
    name = f"t_pdb_{uuid.uuid4().hex[:10]}"
    models = [
        {
            "model_id": f"m{i}",
            "model_name": n,
            "model_url": PROXY_URL,
            "api_key": "sk-CANARYvirtualKEY-07",
            "base_used": [],
            "system_prompt": "",
            "temperature": -1,
            "max_length": -1,
            "top_P": -1,
            "top_K": -1,
            "score_threshold": -1,
        }
        for i, n in enumerate(REFERENCED)
    ]
    sync_client[name]["model_config"].insert_one(
        {"username": "thesis", "selected_model": "m0", "models": models}
    )
    yield name
    sync_client.drop_database(name)


@pytest.fixture(scope="module")
def audit(
    engine: Engine, mongo_uri: str, layra_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    from typer.testing import CliRunner

    from layra_migrate.cli import app
    from layra_migrate.sandbox.litellm_config import write_litellm_config

    cwd = tmp_path_factory.mktemp("auditcwd")
    config = write_litellm_config(cwd / "litellm")
    env = {
        "DOCKER_HOST": engine.host,
        "LAYRA_MIGRATE_MONGO_URI": mongo_uri,
        "LAYRA_MIGRATE_DB": layra_db,
        "NO_COLOR": "1",
        "COLUMNS": "250",
        "DEEPSEEK_API_KEY": KEY_ENV["DEEPSEEK_API_KEY"],
    }

    def _run(*args: str, docker_host: str | None = engine.host) -> CliResult:
        old = os.getcwd()
        os.chdir(cwd)
        try:
            r = CliRunner().invoke(
                app,
                ["audit", "--litellm-config", str(config), *args],
                env={**env, "DOCKER_HOST": docker_host},
                catch_exceptions=False,
            )
        finally:
            os.chdir(old)
        return CliResult(r.exit_code, r.stdout, r.stderr)

    return _run


def _models(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["model_name"]: m for m in data["models"]}


def _assert_db_models_marked(data: dict[str, Any], pg: PgStack) -> None:
    db = data["proxy_db"]
    assert db["status"] == "read", db
    assert db["model_names"] == sorted(pg.seed.db_models)
    assert all("api_key" in m["param_keys"] and "model" in m["param_keys"] for m in db["models"])
    models = _models(data)
    for name in ("kimi-k2-ui", "openai/gpt-4o-mini-ui"):
        r = models[name]["resolution"]
        assert r["status"] == "unresolved" and r["reason_code"] == "defined_in_proxy_db", r
        assert r["reason"].startswith("defined in the proxy database")
        assert "write its target in the plan" in r["reason"]
    # Without the database the wildcard would have sent it to OpenAI: that is refused.
    assert (
        "is not the one the proxy used" in models["openai/gpt-4o-mini-ui"]["resolution"]["reason"]
    )
    assert models["deepseek-reasoner"]["resolution"]["status"] == "resolved"
    assert data["blocking"] == 2


def test_audit_reads_models_from_the_named_container(audit: Any, pg_stack: PgStack) -> None:
    r = audit("--litellm-db-container", pg_stack.db, "--json")
    assert r.code == 0, r.stderr
    data = r.json()
    _assert_db_models_marked(data, pg_stack)
    assert data["proxy_db"]["found_by"] == "--litellm-db-container"
    assert_no_canary(r.stdout, r.stderr)
    assert PARAM_CANARY not in r.stdout + r.stderr and DB_PASSWORD not in r.stdout + r.stderr


def test_audit_discovers_the_proxy_database(audit: Any, pg_stack: PgStack, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    r = audit("--json", "--plan-out", str(plan))
    assert r.code == 0, r.stderr
    data = r.json()
    _assert_db_models_marked(data, pg_stack)
    assert (
        "host 'db' of" in data["proxy_db"]["found_by"]
        and pg_stack.stack.proxy in data["proxy_db"]["found_by"]
    )
    text = plan.read_text()
    assert "defined in the proxy database" in text
    human = audit()
    assert human.code == 0, human.stderr
    assert "Models stored in the proxy database" in human.stdout
    assert "defined in the proxy database" in human.stdout
    for out in (r.stdout, r.stderr, text, human.stdout, human.stderr):
        assert PARAM_CANARY not in out
        assert_no_canary(out)
    # Reading changed nothing.
    assert pg_stack.snapshot() == pg_stack.baseline


def test_audit_without_docker_is_unchanged(audit: Any) -> None:
    if os.path.exists("/var/run/docker.sock"):
        pytest.skip("a Docker engine answers on the default socket here")
    r = audit("--json", docker_host="")
    assert r.code == 0, r.stderr
    data = r.json()
    assert data["proxy_db"]["status"] == "not_checked"
    assert _models(data)["kimi-k2-ui"]["resolution"]["reason_code"] == "no_route"


def test_named_container_that_cannot_be_read_exits_3(
    audit: Any, pg_stack: PgStack, engine: Engine, pg_image: PgImage
) -> None:
    r = audit("--litellm-db-container", pg_stack.stack.cache, "--json")  # no psql there
    assert r.code == 3, r.stdout + r.stderr
    assert "psql is not available" in r.stderr
    r = audit("--litellm-db-container", "no-such-container-k", "--json")
    assert r.code == 2, r.stdout + r.stderr
    assert "no such container" in r.stderr
    api = engine.client.api
    stopped = api.create_container(pg_image.ref, name=f"stopped-db-{uuid.uuid4().hex[:6]}")
    try:
        r = audit("--litellm-db-container", stopped["Id"][:12], "--json")
        assert r.code == 3, r.stdout + r.stderr
        assert "is created, not running" in r.stderr and "docker start" in r.stderr
    finally:
        api.remove_container(stopped["Id"], force=True)


def test_the_reading_session_is_read_only(engine: Engine, pg_stack: PgStack) -> None:
    """The environment proxy_db.py gives psql makes every transaction read-only."""
    login = pg_login({"POSTGRES_USER": "llmproxy", "POSTGRES_DB": "litellm"})
    _out, res = run_exec(
        engine.client,
        pg_stack.db,
        [
            "psql",
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            login.user,
            "-d",
            login.dbname,
            "-c",
            'DELETE FROM "LiteLLM_ProxyModelTable"',
        ],
        login.exec_env(read_only=True),
    )
    assert res.exit_code != 0
    assert "read-only transaction" in res.stderr
    assert ldb.snapshot(engine.client, pg_stack.db) == pg_stack.baseline
