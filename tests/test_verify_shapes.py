"""`verify` sends what Layra sends: one probe per distinct parameter shape, built from real
references (UI default flags, -1, Layra's clamps), never from soft-deleted documents.

Real parts: the MongoDB wire server, the OpenAI SDK over HTTP to the provider stub, the CLI
in process (Typer's CliRunner). Outputs are validated against docs/schemas/verify.v1.json.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from layra_migrate.sandbox.provider_stub import ProviderStub
from tests.conftest import assert_no_canary

KEY = "sk-CANARYdirectSHAPES-0007"
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "schemas" / "verify.v1.json"


@pytest.fixture(scope="module")
def stub() -> Iterator[ProviderStub]:
    with ProviderStub(behaviours={"o-strict": "400-temperature"}, valid_keys=frozenset({KEY})) as s:
        yield s


def camel(name: str, url: str, **params: Any) -> dict[str, Any]:
    cfg = {
        "modelName": name,
        "modelURL": url,
        "apiKey": KEY,
        "temperature": -1,
        "maxLength": -1,
        "topP": -1,
    }
    cfg.update(params)
    return cfg


def snake(name: str, url: str, **params: Any) -> dict[str, Any]:
    cfg = {
        "model_id": f"m_{name}",
        "model_name": name,
        "model_url": url,
        "api_key": KEY,
        "temperature": -1,
        "max_length": -1,
        "top_P": -1,
    }
    cfg.update(params)
    return cfg


def workflow(db: Any, wid: str, configs: list[dict[str, Any]], deleted: bool = False) -> None:
    doc: dict[str, Any] = {
        "workflow_id": wid,
        "username": "u",
        "nodes": [
            {"id": f"n{i}", "type": "vlm", "data": {"nodeType": "vlm", "modelConfig": cfg}}
            for i, cfg in enumerate(configs)
        ],
    }
    if deleted:
        doc["is_delete"] = True
    db.workflows.insert_one(doc)


@pytest.fixture
def invoke(mongo_uri: str, db_name: str, tmp_path: Path) -> Any:
    from typer.testing import CliRunner

    from layra_migrate.cli import app

    def _run(*args: str) -> Any:
        env = {
            "LAYRA_MIGRATE_MONGO_URI": mongo_uri,
            "LAYRA_MIGRATE_DB": db_name,
            "NO_COLOR": "1",
            "COLUMNS": "220",
        }
        old = Path.cwd()
        os.chdir(tmp_path)
        try:
            return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
        finally:
            os.chdir(old)

    return _run


def test_each_shape_is_probed_and_the_failing_one_is_named(
    db: Any, invoke: Any, stub: ProviderStub
) -> None:
    import jsonschema

    url = stub.base_url
    # o-strict rejects temperature. Three references send provider defaults (two say so
    # with the UI flag, whatever number is stored); one sends temperature 0.3.
    workflow(
        db,
        "wf1",
        [
            camel("o-strict", url, temperature=0.7, useTemperatureDefault=True),
            camel(
                "o-strict",
                url,
                temperature=0.2,
                useTemperatureDefault=True,
                maxLength=100,
                useMaxLengthDefault=True,
            ),
            camel("o-strict", url, temperature=0.3),
        ],
    )
    db.model_config.insert_one(
        {"username": "u", "selected_model": "m_o-strict", "models": [snake("o-strict", url)]}
    )
    stub.clear()
    r = invoke("verify", "--json", "--timeout", "5")
    assert r.exit_code == 5, r.output
    data = json.loads(r.stdout)
    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    rows = data["targets"]
    assert [(t["params"], t["status"]) for t in rows] == [
        (None, "ok"),
        ({"temperature": 0.3}, "bad_request"),
    ]
    assert all(t["references"] == 4 for t in rows)
    assert rows[1]["shape"] == {
        "index": 2,
        "of": 2,
        "references": 1,
        "distinct": 2,
        "label": "shape 2 of 2 (1 reference(s)): temperature=0.3",
    }
    assert "temperature" in rows[1]["detail"]
    # exactly those two requests: no flagged value, no probe-only budget, never a mix
    bodies = sorted(
        json.dumps({k: v for k, v in q.body.items() if k in ("temperature", "top_p", "max_tokens")})
        for q in stub.requests_for("o-strict")
    )
    assert bodies == ['{"temperature": 0.3}', "{}"]
    # the table names the shape that failed
    r = invoke("verify", "--timeout", "5")
    assert "o-strict [shape 2/2, 1 ref(s): temperature=0.3]" in r.stdout
    assert_no_canary(r.stdout, r.stderr)


def test_at_most_three_shapes_most_common_first_and_clamped(
    db: Any, invoke: Any, stub: ProviderStub
) -> None:
    url = stub.base_url
    shapes = (
        [camel("m5", url, maxLength=100)] * 4  # sent as max_tokens 1024
        + [camel("m5", url, temperature=3)] * 3  # clamped to 1
        + [camel("m5", url, topP=0.5)] * 2
        + [camel("m5", url, temperature=0.1), camel("m5", url, topP=0.9)]
    )
    workflow(db, "wf", shapes)
    stub.clear()
    r = invoke("verify", "--json", "--timeout", "5")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["targets"]
    assert [(t["params"], t["shape"]["references"]) for t in rows] == [
        ({"max_tokens": 1024}, 4),
        ({"temperature": 1.0}, 3),
        ({"top_p": 0.5}, 2),
    ]
    assert {t["shape"]["distinct"] for t in rows} == {5}
    assert len(stub.requests_for("m5")) == 3


def test_soft_deleted_documents_never_shape_a_probe(
    db: Any, mongo_uri: str, db_name: str, stub: ProviderStub
) -> None:
    from pymongo import AsyncMongoClient

    from layra_migrate.proxy import ProxySet
    from layra_migrate.verify import database_targets

    url = stub.base_url
    workflow(db, "live", [camel("m1", url, temperature=0.3)])
    # more references, all soft-deleted, with another shape: counted, never probed with
    workflow(db, "gone", [camel("m1", url, temperature=0.9, topP=0.1)] * 5, deleted=True)
    for i in range(2):
        db.conversations.insert_one(
            {
                "conversation_id": f"c{i}",
                "username": "u",
                "is_delete": True,
                "model_config": snake("m1", url, max_length=9000),
            }
        )

    async def targets() -> Any:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
        try:
            return await database_targets(client[db_name], ProxySet.build())
        finally:
            await client.close()

    [t] = asyncio.run(targets()).targets
    assert t.references == 8  # the rewrite changes deleted documents too
    assert [(s.params.as_dict(), s.references) for s in t.shapes] == [({"temperature": 0.3}, 1)]
    assert t.params.as_dict() == {"temperature": 0.3}
