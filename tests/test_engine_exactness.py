"""Exactness of up -> down on generated documents (hypothesis), through the library,
against the real wire server: the byte-exact content hash must come back."""

from __future__ import annotations

import asyncio
import string
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from bson import Binary, Decimal128, Int64, ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layra_migrate.engine.discovery import discover
from layra_migrate.engine.runner import RunOptions, Store, apply, rollback
from layra_migrate.litellm.resolve import Target
from layra_migrate.plan import KeyValues, Plan, PlanEntry
from tests.rewrite_support import raw_fingerprint

PROXY = ["http://litellm-proxy:4000/v1", "http://localhost:4000/v1"]
SPELLINGS = [
    "http://litellm-proxy:4000/v1",
    "HTTP://LiteLLM-Proxy:4000/v1/",
    "http://localhost:4000",
    "https://api.deepseek.com",
    "",
    None,
]
KEY = "sk-CANARYenvALPHAkey-0000"
PLAN = Plan(
    None,
    None,
    PROXY,
    {
        "alpha": PlanEntry(
            "alpha", Target("deepseek", "https://api.deepseek.com", "alpha-up", "ALPHA_KEY")
        ),
        "beta": PlanEntry(
            "beta", Target("openai", "https://api.openai.com/v1", "beta", None, key_required=False)
        ),
        "gamma": PlanEntry("gamma", None, reason="no route"),
    },
)
KEYS = KeyValues({"ALPHA_KEY": KEY})

field_names = st.text(alphabet=string.ascii_letters + "_éß中 ", min_size=1, max_size=8).filter(
    lambda s: not s.startswith("$")
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    st.floats(allow_nan=False, width=64),
    st.text(max_size=12),
    st.decimals(
        allow_nan=False,
        allow_infinity=False,
        places=4,
        min_value=Decimal("-1e9"),
        max_value=Decimal("1e9"),
    ).map(Decimal128),
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
    ),
    st.binary(max_size=16).map(lambda b: Binary(b, 0)),
    st.just(None).map(lambda _: ObjectId()),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(field_names, inner, max_size=3)
    ),
    max_leaves=8,
)
extras = st.dictionaries(field_names.map(lambda s: "x_" + s), values, max_size=3)


@st.composite
def configs(draw: Any, camel: bool, with_id: bool = True) -> dict[str, Any]:
    url_k, name_k, key_k, id_k = (
        ("modelURL", "modelName", "apiKey", "modelId")
        if camel
        else ("model_url", "model_name", "api_key", "model_id")
    )
    cfg: dict[str, Any] = {}
    if with_id and draw(st.booleans()):
        cfg[id_k] = draw(st.text(max_size=6))
    if draw(st.integers(0, 9)) > 0:
        cfg[url_k] = draw(st.sampled_from(SPELLINGS))
    if draw(st.integers(0, 9)) > 0:
        cfg[name_k] = draw(st.sampled_from(["alpha", "beta", "gamma", "", None]))
    if draw(st.integers(0, 4)) > 0:
        cfg[key_k] = draw(
            st.sampled_from(["sk-CANARYvirtualKEY0001-ijklmnop", "", None, "sk-1234"])
        )
    cfg.update(draw(extras))
    if draw(st.booleans()):
        cfg["temperature"] = draw(st.sampled_from([-1, 0.7, Decimal128("0.5")]))
    items = list(cfg.items())
    order = draw(st.permutations(range(len(items))))
    return dict(items[i] for i in order)


@st.composite
def datasets(draw: Any) -> dict[str, list[dict[str, Any]]]:
    mc = [
        {
            "_id": draw(st.sampled_from([ObjectId(), str(uuid.uuid4())])),
            "username": f"u{i}",
            "models": draw(st.lists(configs(camel=False), max_size=3)),
            **draw(extras),
        }
        for i in range(draw(st.integers(0, 3)))
    ]
    conv = [
        {
            "_id": ObjectId(),
            "conversation_id": f"c{i}",
            "username": f"u{i}",
            "model_config": draw(configs(camel=False, with_id=False)),
            **draw(extras),
        }
        for i in range(draw(st.integers(0, 3)))
    ]
    wf = [
        {
            "_id": ObjectId(),
            "username": "u0",
            "nodes": [
                {
                    "id": f"n{j}",
                    "data": {
                        "nodeType": "vlm",
                        "modelConfig": draw(configs(camel=draw(st.booleans()))),
                    },
                }
                if draw(st.booleans())
                else {"id": f"n{j}", "data": draw(extras)}
                for j in range(draw(st.integers(0, 3)))
            ],
            **draw(extras),
        }
        for _ in range(draw(st.integers(0, 2)))
    ]
    nodes = [
        {
            "_id": ObjectId(),
            "username": "u0",
            "custom_nodes": {
                f"Node {j}": {"data": {"modelConfig": draw(configs(camel=True))}}
                for j in range(draw(st.integers(0, 2)))
            },
        }
        for _ in range(draw(st.integers(0, 1)))
    ]
    return {"model_config": mc, "conversations": conv, "workflows": wf, "nodes": nodes}


async def _up_down(uri: str, db_name: str, batch: int) -> tuple[int, int]:
    from pymongo import AsyncMongoClient

    client: Any = AsyncMongoClient(uri, tz_aware=False)
    try:
        store = Store(client[db_name])
        migrations = discover()
        options = RunOptions(batch_size=batch)
        up = await apply(store, migrations, plan=PLAN, keys=KEYS, options=options)
        again = await apply(store, migrations, plan=PLAN, keys=KEYS, options=options)
        assert again.documents == 0
        down = await rollback(store, migrations, to=None, force=False, options=options)
        assert down.conflict_count == 0
        return up.documents, sum(s.restored for s in down.stats.values())
    finally:
        await client.close()


@pytest.mark.slow
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
@given(data=datasets(), batch=st.integers(1, 4))
def test_up_then_down_restores_generated_documents_byte_for_byte(
    sync_client: Any, mongo_uri: str, data: dict[str, list[dict[str, Any]]], batch: int
) -> None:
    name = f"h_{uuid.uuid4().hex[:12]}"
    db = sync_client[name]
    try:
        for coll, docs in data.items():
            if docs:
                db[coll].insert_many(docs)
        original = raw_fingerprint(db)
        written, restored = asyncio.run(_up_down(mongo_uri, name, batch))
        assert written == restored
        after = raw_fingerprint(db)
        assert after == original
    finally:
        sync_client.drop_database(name)


def test_up_rewrites_every_resolvable_reference_in_generated_shapes(
    sync_client: Any, mongo_uri: str
) -> None:
    """A fixed case covering both spellings, alias != upstream, a missing key field."""
    name = f"h_{uuid.uuid4().hex[:12]}"
    db = sync_client[name]
    db.model_config.insert_one(
        {
            "_id": 1,
            "username": "u",
            "models": [
                {
                    "model_name": "alpha",
                    "model_url": "http://localhost:4000",
                    "api_key": "sk-1234",
                    "temperature": -1,
                },
                {"model_name": "beta", "model_url": "http://litellm-proxy:4000/v1"},  # no key field
                {
                    "model_name": "gamma",
                    "model_url": "http://litellm-proxy:4000/v1",
                    "api_key": "x",
                },
            ],
        }
    )
    db.workflows.insert_one(
        {
            "_id": 2,
            "nodes": [
                {
                    "data": {
                        "modelConfig": {
                            "modelName": "alpha",
                            "modelURL": "HTTP://LiteLLM-Proxy:4000/v1/",
                            "apiKey": None,
                        }
                    }
                }
            ],
        }
    )
    try:
        asyncio.run(_apply_only(mongo_uri, name))
        models = db.model_config.find_one({"_id": 1})["models"]
        assert models[0] == {
            "model_name": "alpha-up",
            "model_url": "https://api.deepseek.com",
            "api_key": KEY,
            "temperature": -1,
        }
        assert models[1] == {"model_name": "beta", "model_url": "https://api.openai.com/v1"}
        assert models[2]["model_url"] == "http://litellm-proxy:4000/v1"  # unresolved: left
        cfg = db.workflows.find_one({"_id": 2})["nodes"][0]["data"]["modelConfig"]
        assert cfg == {
            "modelName": "alpha-up",
            "modelURL": "https://api.deepseek.com",
            "apiKey": KEY,
        }
    finally:
        sync_client.drop_database(name)


async def _apply_only(uri: str, db_name: str) -> None:
    from pymongo import AsyncMongoClient

    client: Any = AsyncMongoClient(uri, tz_aware=False)
    try:
        await apply(Store(client[db_name]), discover(), plan=PLAN, keys=KEYS, options=RunOptions())
    finally:
        await client.close()


def test_transactional_batches_are_exact_too(sync_client: Any, mongo_uri: str) -> None:
    """The replica-set path (each batch in one transaction) gives the same result."""
    from layra_migrate.sandbox.layra_data import build_dataset, seed_database

    name = f"h_{uuid.uuid4().hex[:12]}"
    db = sync_client[name]
    seed_database(db, build_dataset(users=6, seed=4, names=["alpha", "beta", "gamma"]))
    original = raw_fingerprint(db)

    async def scenario() -> int:
        from pymongo import AsyncMongoClient

        client: Any = AsyncMongoClient(mongo_uri, tz_aware=False)
        try:
            store = Store(client[name], client, transactions=True)
            up = await apply(
                store, discover(), plan=PLAN, keys=KEYS, options=RunOptions(batch_size=3)
            )
            await rollback(store, discover(), to=None, force=False, options=RunOptions())
            return up.documents
        finally:
            await client.close()

    try:
        assert asyncio.run(scenario()) > 0
        assert raw_fingerprint(db) == original
    finally:
        sync_client.drop_database(name)
