"""docs/API.md's whole-job example runs as written, in process, against real parts.

A realistic Layra database whose proxied names the LiteLLM config all resolves (so the
job can go all the way), the provider stub standing in for the providers, and a fake
LiteLLM stack on the suite's Docker engine. The example's own code does the four
phases; the test then checks what a person relies on: nothing left on the proxy, the
stack stopped and archived, and the way back (restore, then rollback) gives the
exact original, byte for byte.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from layra_migrate.sandbox.layra_data import build_dataset, seed_database
from layra_migrate.sandbox.litellm_config import write_litellm_config
from layra_migrate.sandbox.provider_stub import ProviderStub
from tests.conftest import KEY_ENV, assert_no_canary
from tests.docker_engine import Engine, destroy_stack, make_stack, state
from tests.rewrite_support import raw_fingerprint

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[1]
# The dataset's proxied names the sandbox config resolves to one direct target each
# (gpt-oss-120b is a load-balanced group, voyage-3 and
# claude-sonnet-4 are not OpenAI-compatible chat targets: a plan needs a person there).
RESOLVABLE = [
    "deepseek-reasoner",
    "deepseek-chat",
    "gemini-2.5-flash",
    "kimi-k2",
    "thesis-default",
    "openai/gpt-4.1-mini",
]
DIRECT_KEY = "sk-apidoc-direct-0000"


def python_blocks() -> list[str]:
    text = (REPO / "docs" / "API.md").read_text()
    return [m.group(1) for m in re.finditer(r"```python\n(.*?)```", text, re.S)]


@pytest.fixture
def stub() -> Iterator[ProviderStub]:
    with ProviderStub(behaviours={"deepseek-reasoner": "reasoning"}) as provider:
        yield provider


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("LAYRA_MIGRATE_", "MONGODB_", "REDIS_URL")) or name in KEY_ENV:
            monkeypatch.delenv(name)


def test_whole_job_example_runs(
    engine: Engine,
    db: Any,
    mongo_uri: str,
    db_name: str,
    stub: ProviderStub,
    clean_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from layra_migrate import commands, load_settings

    data = build_dataset(
        users=6, seed=13, names=RESOLVABLE, direct_urls=[stub.base_url], direct_keys=[DIRECT_KEY]
    )
    seed_database(db, data)
    original = raw_fingerprint(db)
    config = write_litellm_config(
        tmp_path / "litellm", provider_base=stub.base_url.removesuffix("/v1")
    )
    layra_env = tmp_path / "layra.env"
    layra_env.write_text(
        "".join(
            f"{k}={v}\n"
            for k, v in {
                "LAYRA_MIGRATE_MONGO_URI": mongo_uri,
                "LAYRA_MIGRATE_DB": db_name,
                **KEY_ENV,
            }.items()
        )
    )
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    stack_dir = tmp_path / "stack"
    stack_dir.mkdir()
    s = make_stack(engine.client, stack_dir)
    try:
        migrate_block, undo_block = [b for b in python_blocks() if "async def " in b]
        ns: dict[str, Any] = {"__name__": "api_doc_example"}
        exec(compile(migrate_block, "docs/API.md (migrate)", "exec"), ns)
        exec(compile(undo_block, "docs/API.md (undo)", "exec"), ns)
        archive = tmp_path / "litellm-archive"

        code = asyncio.run(ns["migrate"](str(layra_env), str(config), s.project, str(archive)))
        out = capsys.readouterr().out
        assert code == 0, out
        assert f"archive {archive} verified" in out
        # Phase 1 wrote the plan where the example said; the rewrite left nothing on the
        # proxy (the interlock let the decommission through).
        assert (work / "plan.yaml").is_file()
        settings = load_settings(env_file=layra_env)
        after = asyncio.run(commands.audit(settings)).report
        assert after.via_proxy == 0
        assert raw_fingerprint(db) != original
        # Both verify runs were probes through the stub, with the keys of the env file.
        keys = {q.api_key for q in stub.requests}
        assert keys and keys <= {*KEY_ENV.values(), DIRECT_KEY}
        assert db["layra_migrate_verify"].count_documents({"source": "database"}) == 1
        # The stack is stopped with its restart policies neutralised; the run recorded.
        for name in (s.proxy, s.db, s.cache):
            assert state(engine.client, name) == ("exited", "no")
        assert (archive / "manifest.json").is_file()
        rec = db["layra_migrate_decommission"].find_one({"project": s.project})
        assert rec is not None and rec["exit_code"] == 0 and rec["archive_verified"] is True

        code = asyncio.run(ns["undo"](str(layra_env), str(archive)))
        assert code == 0, capsys.readouterr().out
        assert state(engine.client, s.proxy)[0] == "running"
        assert state(engine.client, s.db)[0] == "running"
        assert raw_fingerprint(db) == original
        assert_no_canary(out, capsys.readouterr().out)
    finally:
        destroy_stack(engine.client, s)


def test_status_example_and_confirmation_default(
    db: Any,
    mongo_uri: str,
    db_name: str,
    clean_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first example's call, and the default ``confirm`` that refuses like a terminal
    without --yes: a UsageError before anything is written."""
    from layra_migrate import commands, load_settings
    from layra_migrate.errors import UsageError

    monkeypatch.chdir(tmp_path)
    settings = load_settings(mongo_uri=mongo_uri, db=db_name)
    result = asyncio.run(commands.status(settings))
    assert result.exit_code == 0
    assert result.as_json()["schema"] == "layra-migrate/status/v1"
    # a fresh database: every bundled migration is pending
    assert result.pending and result.pending == [r.id for r in result.report.migrations]
    # nothing to roll back: nothing is written, so nothing is asked
    assert asyncio.run(commands.rollback(settings)).run.migrations == []
    assert not [n for n in db.list_collection_names() if n.startswith("layra_migrate")]
    # something to roll back (an applied run in the ledger): refused before any write
    migration = result.pending[0]
    db["layra_migrate_ledger"].insert_one(
        {
            "_id": "r1",
            "migration": migration,
            "direction": "up",
            "status": "applied",
            "run_no": 1,
            "checksum": None,
            "by": "t@h",
            "started_at": datetime(2026, 1, 1),
        }
    )
    with pytest.raises(UsageError, match="confirmation"):
        asyncio.run(commands.rollback(settings))
    assert [d["_id"] for d in db["layra_migrate_ledger"].find()] == ["r1"]
    assert [n for n in db.list_collection_names() if n.startswith("layra_migrate")] == [
        "layra_migrate_ledger"
    ]
