"""Prompts name what they act on, warnings come first, and "n" writes nothing.

The terminal is the one part not real here: the command's output is told it can ask
(``Output.interactive``), and the answer is fed on stdin through Typer's CliRunner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from layra_migrate import redact
from layra_migrate.render import Output
from tests.conftest import KEY_ENV, assert_no_canary
from tests.rewrite_support import raw_fingerprint, tool_collections, write_plan

MIGRATION = "0001_litellm_to_direct"


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Output, "interactive", property(lambda self: True))


def test_rewrite_prompt_names_host_database_migration_and_counts(
    terminal: None,
    seeded_db: Any,
    cli: Any,
    litellm_config: Path,
    tmp_path: Path,
    mongo_uri: str,
    db_name: str,
) -> None:
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    before = raw_fingerprint(seeded_db)
    preview = cli(
        "rewrite", "--plan", str(plan), "--dry-run", "--skip-unresolved", "--json", env=KEY_ENV
    ).json()
    refs = preview["preflight"]["to_rewrite"]
    r = cli("rewrite", "--plan", str(plan), "--skip-unresolved", env=KEY_ENV, input="n\n")
    assert r.code == 4, r.stderr
    prompt = r.stderr[r.stderr.index("Rewrite ") :]
    assert f"Rewrite {refs} proxied reference(s)" in prompt
    assert f"database {db_name!r} on {redact.mask_url(mongo_uri)}" in prompt
    assert f"migration(s): {MIGRATION}" in prompt
    assert "stay on the proxy" in prompt  # the unresolved names, counted
    assert "not confirmed; nothing was written" in r.stderr
    # the warning comes before the question
    assert r.stderr.index("no --redis-url") < r.stderr.index("Rewrite ")
    assert raw_fingerprint(seeded_db) == before
    assert tool_collections(seeded_db) == set()
    assert_no_canary(r.stdout, r.stderr)


def test_rollback_prompt_names_migration_documents_and_conflicts(
    terminal: None,
    seeded_db: Any,
    cli: Any,
    litellm_config: Path,
    tmp_path: Path,
    db_name: str,
) -> None:
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    r = cli("rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", "--json", env=KEY_ENV)
    assert r.code == 0, r.stderr
    changed = r.json()["documents"]
    journal = list(seeded_db["layra_migrate_journal"].find({"collection": "conversations"}))
    seeded_db.conversations.update_one(
        {"_id": journal[0]["doc_id"]}, {"$set": {"model_config.model_url": "https://edited/v1"}}
    )
    before = raw_fingerprint(seeded_db)
    ledger = seeded_db["layra_migrate_ledger"].count_documents({})

    r = cli("rollback", input="n\n")
    assert r.code == 4, r.stderr
    prompt = r.stderr[r.stderr.index("Roll back ") :]
    assert f"Roll back {MIGRATION} in database {db_name!r}" in prompt
    assert f"{changed - 1} document(s) to restore" in prompt
    assert "1 conflict(s) changed since the migration, left alone" in prompt
    assert r.stderr.index("no --redis-url") < r.stderr.index("Roll back ")

    r = cli("rollback", "--force", input="n\n")
    assert r.code == 4
    assert (
        f"{changed} document(s) to restore, 1 of them changed since the migration "
        "(conflicts) and OVERWRITTEN with --force" in r.stderr
    )
    assert raw_fingerprint(seeded_db) == before
    assert seeded_db["layra_migrate_ledger"].count_documents({}) == ledger


def test_no_terminal_without_yes_still_refuses(
    seeded_db: Any, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    r = cli("rewrite", "--plan", str(plan), "--skip-unresolved", env=KEY_ENV, input="y\n")
    assert r.code == 2 and "--yes" in r.stderr
    assert tool_collections(seeded_db) == set()


def test_rollback_refuses_when_the_ledger_changed_while_asking(
    seeded_db: Any,
    cli: Any,
    litellm_config: Path,
    tmp_path: Path,
    mongo_uri: str,
    db_name: str,
) -> None:
    """The confirmed migrations are the ones rolled back: if another run applied a newer
    one while the question waited, nothing is written."""
    import asyncio
    from datetime import datetime

    from layra_migrate import commands, load_settings
    from layra_migrate.errors import RefusedError

    plan = write_plan(cli, litellm_config, tmp_path / "plan.yaml")
    assert cli("rewrite", "--plan", str(plan), "--yes", "--skip-unresolved", env=KEY_ENV).code == 0
    before = raw_fingerprint(seeded_db)
    asked: list[str] = []

    def confirm(question: str, expected: str | None) -> bool:
        asked.append(question)
        seeded_db["layra_migrate_ledger"].insert_one(
            {
                "_id": "other",
                "migration": "0002_someone_else",
                "direction": "up",
                "status": "applied",
                "run_no": 1,
                "checksum": "x",
                "by": "x@y",
                "started_at": datetime(2030, 1, 1),
            }
        )
        return True

    settings = load_settings(mongo_uri=mongo_uri, db=db_name)
    with pytest.raises(RefusedError, match="ledger changed while asking"):
        asyncio.run(commands.rollback(settings, confirm=confirm))
    assert asked and MIGRATION in asked[0]
    assert raw_fingerprint(seeded_db) == before


def test_prompt_target_masks_the_uri_password() -> None:
    from layra_migrate import load_settings
    from layra_migrate.commands._steps import _where

    settings = load_settings(mongo_uri="mongodb://layra:CANARYpass42@db.example:27017/x", db="x")
    where = _where(settings, "x")
    assert where.startswith("database 'x' on mongodb://layra:") and "@db.example:27017" in where
    assert_no_canary(where)
