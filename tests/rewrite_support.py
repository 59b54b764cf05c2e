"""Helpers and fixtures shared by the rewrite/engine tests (imported by those modules)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from layra_migrate import toolstate
from layra_migrate.sandbox.servers import Server, start_redis
from tests.conftest import KEY_ENV, run_cli

TOOL_COLLECTIONS = set(toolstate.ALL)


def raw_fingerprint(db: Any) -> dict[str, dict[str, str]]:
    """Byte-exact content hash of every document of every application collection."""
    from bson import encode
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    out: dict[str, dict[str, str]] = {}
    for name in sorted(db.list_collection_names()):
        if toolstate.is_tool_collection(name):
            continue
        coll = db.get_collection(name, codec_options=CodecOptions(document_class=RawBSONDocument))
        out[name] = {
            encode({"_id": d["_id"]}).hex(): hashlib.sha256(d.raw).hexdigest()
            for d in coll.find({})
        }
    return out


def tool_collections(db: Any) -> set[str]:
    return {n for n in db.list_collection_names() if toolstate.is_tool_collection(n)}


def write_plan(cli: Any, litellm_config: Path, path: Path) -> Path:
    r = cli(
        "audit",
        "--json",
        "--litellm-config",
        str(litellm_config),
        "--plan-out",
        str(path),
        env=KEY_ENV,
    )
    assert r.code == 0, r.stderr
    return path


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    if server is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed (CI=true)")
        pytest.skip("redis-server is not installed")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_server: Server) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_server.uri)
    client.flushdb()
    yield client
    client.close()


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


__all__ = [
    "KEY_ENV",
    "raw_fingerprint",
    "redis_client",
    "redis_server",
    "run_cli",
    "tool_collections",
    "wait_for",
    "write_plan",
]
