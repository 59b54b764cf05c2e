"""Every command's --json output validates against its published schema (docs/schemas/).

Real outputs of real runs (wire server, redis-server); verify's schema is checked by
tests/test_verify_shapes.py and tests/test_verify_against_proxy.py, decommission's and
restore's by tests/test_decommission_prompts.py (they need the Docker engine).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import KEY_ENV
from tests.rewrite_support import (  # noqa: F401  (fixtures)
    redis_client,
    redis_server,
    write_plan,
)
from tests.schema_support import SCHEMAS, schema, validate


def _json(cli: Any, *args: str, env: dict[str, str] | None = None, code: int = 0) -> Any:
    r = cli(*args, "--json", env=env)
    assert r.code == code, r.stderr
    assert len(r.stdout.strip().splitlines()) == 1, r.stdout
    return r.json()


def test_every_command_output_matches_its_schema(
    seeded_db: Any,
    cli: Any,
    litellm_config: Path,
    tmp_path: Path,
    redis_client: Any,  # noqa: F811 - the fixture
    redis_server: Any,  # noqa: F811 - the fixture
) -> None:
    plan = tmp_path / "plan.yaml"
    env = {**KEY_ENV, "LAYRA_MIGRATE_REDIS_URL": redis_server.uri}
    validate(
        "audit",
        _json(
            cli,
            "audit",
            "--litellm-config",
            str(litellm_config),
            "--plan-out",
            str(plan),
            env=KEY_ENV,
        ),
    )
    validate("audit", _json(cli, "audit", env=KEY_ENV))  # no config: unresolved names
    validate("history", _json(cli, "history"))
    validate("status", _json(cli, "status"))
    dry = _json(cli, "rewrite", "--plan", str(plan), "--dry-run", "--skip-unresolved", env=env)
    assert dry["changes"]
    validate("rewrite", dry)
    done = _json(cli, "rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", env=env)
    assert done["redis"]["redis_url"] is not None
    validate("rewrite", done)
    validate(
        "rewrite", _json(cli, "rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", env=env)
    )  # nothing left to apply
    status = _json(cli, "status")
    assert status["migrations"][0]["applied"] is not None
    validate("status", status)
    validate("check", _json(cli, "check", "--plan", str(plan), env=KEY_ENV))
    rb_dry = _json(cli, "rollback", "--dry-run")
    assert rb_dry["restores"]
    validate("rollback", rb_dry)
    validate("rollback", _json(cli, "rollback", "--yes", env=env))
    validate("status", _json(cli, "status"))
    runs = _json(cli, "history")
    assert {r["command"] for r in runs["runs"]} == {"rewrite", "rollback"}
    validate("history", runs)
    validate("unlock", _json(cli, "unlock", "--if-stale"))
    validate(
        "new",
        _json(cli, "new", "point_gemini_at_vertex", "--migrations-dir", str(tmp_path / "mig")),
    )


@pytest.mark.parametrize(
    "command",
    [
        "audit",
        "rewrite",
        "rollback",
        "status",
        "check",
        "history",
        "new",
        "unlock",
        "decommission",
        "restore",
    ],
)
def test_schemas_are_valid_and_require_their_fields(command: str) -> None:
    s = schema(command)
    jsonschema.Draft202012Validator.check_schema(s)
    assert set(s["required"]) >= {"schema"} and len(s["required"]) >= 2


def test_every_json_command_has_a_schema() -> None:
    commands = {
        "audit",
        "verify",
        "rewrite",
        "rollback",
        "status",
        "history",
        "check",
        "new",
        "unlock",
        "decommission",
        "restore",
    }
    assert {p.name.removesuffix(".v1.json") for p in SCHEMAS.glob("*.v1.json")} == commands
