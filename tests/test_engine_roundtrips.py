"""The write and restore paths' round trips (issue L), through the library against the real
wire server, counted with the driver's command monitoring: a constant number of commands
per batch whatever the batch size, reads only where a guard missed, and the guarantees
kept on those paths (a concurrent edit between the journal and the guarded write, a
conflict found by the optimistic rollback, old journal entries without an after-image).

These are logic properties (which commands, how many), never timings.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import pytest

from layra_migrate import toolstate
from layra_migrate.engine import journal as journal_mod
from layra_migrate.engine.discovery import discover
from layra_migrate.engine.runner import RunOptions, Store, apply, rollback
from layra_migrate.litellm.resolve import Target
from layra_migrate.plan import KeyValues, Plan, PlanEntry
from tests.rewrite_support import raw_fingerprint

PROXY = "http://litellm-proxy:4000/v1"
DIRECT = "https://api.deepseek.com"
EDITED_URL = "http://ollama.internal:11434/v1"
PLAN = Plan(
    None,
    None,
    [PROXY],
    {"alpha": PlanEntry("alpha", Target("deepseek", DIRECT, "alpha-up", "ALPHA_KEY"))},
)
KEYS = KeyValues({"ALPHA_KEY": "sk-test-direct-0000"})
N = 90  # model_config documents, one collection: no batch straddles two collections


def _seed(db: Any, n: int = N) -> None:
    """``n`` users, each with one proxied entry (a key of its own: no two guarded updates
    merge, the engine's worst case) and one direct entry."""
    db.model_config.insert_many([original_doc(i) for i in range(n)])


def original_doc(i: int) -> dict[str, Any]:
    return {
        "_id": i,
        "username": f"u{i:03d}",
        "models": [
            {
                "model_id": f"m{i}",
                "model_name": "alpha",
                "model_url": PROXY,
                "api_key": f"sk-test-virtual-{i:03d}",
                "temperature": 0.5,
            },
            {
                "model_id": f"d{i}",
                "model_name": "gpt",
                "model_url": "https://api.openai.com/v1",
                "api_key": "sk-test-openai-0000",
            },
        ],
    }


class Commands:
    """Every command the async client sends: (name, collection), in order, with a hook
    run when a command's reply arrives (to interleave another client's edit exactly
    there)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.on_reply: Callable[[str, str], None] | None = None
        self._pending: dict[int, tuple[str, str]] = {}

    def started(self, event: Any) -> None:
        coll = event.command.get(event.command_name)
        key = (event.command_name, coll if isinstance(coll, str) else "")
        self._pending[event.request_id] = key
        self.sent.append(key)

    def succeeded(self, event: Any) -> None:
        key = self._pending.pop(event.request_id, ("?", ""))
        if self.on_reply is not None:
            self.on_reply(*key)

    def failed(self, event: Any) -> None:
        self._pending.pop(event.request_id, None)

    def count(self, name: str, coll: str) -> int:
        return sum(1 for c in self.sent if c == (name, coll))

    def clear(self) -> None:
        self.sent.clear()


async def _run(
    uri: str,
    db_name: str,
    action: str,
    batch: int,
    *,
    force: bool = False,
    commands: Commands | None = None,
) -> Any:
    from pymongo import AsyncMongoClient, monitoring

    class Listener(monitoring.CommandListener):
        def started(self, event: Any) -> None:
            if commands is not None:
                commands.started(event)

        def succeeded(self, event: Any) -> None:
            if commands is not None:
                commands.succeeded(event)

        def failed(self, event: Any) -> None:
            if commands is not None:
                commands.failed(event)

    client: Any = AsyncMongoClient(uri, tz_aware=False, event_listeners=[Listener()])
    try:
        store = Store(client[db_name])
        options = RunOptions(batch_size=batch)
        if action == "apply":
            return await apply(store, discover(), plan=PLAN, keys=KEYS, options=options)
        return await rollback(store, discover(), to=None, force=force, options=options)
    finally:
        await client.close()


JOURNAL = toolstate.JOURNAL
LOCK = toolstate.LOCK


@pytest.mark.parametrize("batch", [7, 30, 90])
def test_rewrite_sends_the_same_commands_per_batch_whatever_its_size(
    sync_client: Any, mongo_uri: str, db_name: str, batch: int
) -> None:
    db = sync_client[db_name]
    _seed(db)
    commands = Commands()
    result = asyncio.run(_run(mongo_uri, db_name, "apply", batch, commands=commands))
    assert result.documents == N
    batches = math.ceil(N / batch)
    # per batch: one lock check, one journal insert, one guarded bulk write
    assert commands.count("find", LOCK) == batches
    assert commands.count("insert", JOURNAL) == batches
    assert commands.count("update", "model_config") == batches
    # nothing else touches the journal, and the documents are read once, by the stream
    # (its first page and getMores): no read-before-write, no per-chunk reads
    assert {c for c in commands.sent if c[1] == JOURNAL} == {("insert", JOURNAL)}
    assert commands.count("find", "model_config") == 1
    assert commands.count("getMore", "model_config") <= batches
    # every document holds its after-image and has exactly one journal entry
    assert db.model_config.count_documents({"models.0.model_url": DIRECT}) == N
    assert db[JOURNAL].count_documents({}) == N


@pytest.mark.parametrize("batch", [7, 30, 90])
def test_rollback_restores_without_reading_the_documents_whatever_the_batch_size(
    sync_client: Any, mongo_uri: str, db_name: str, batch: int
) -> None:
    db = sync_client[db_name]
    _seed(db)
    original = raw_fingerprint(db)
    asyncio.run(_run(mongo_uri, db_name, "apply", 500))
    commands = Commands()
    result = asyncio.run(_run(mongo_uri, db_name, "rollback", batch, commands=commands))
    assert result.conflict_count == 0
    assert sum(s.restored for s in result.stats.values()) == N
    assert raw_fingerprint(db) == original
    batches = math.ceil(N / batch)
    # per batch: one lock check, one guarded bulk restore, one update of journal marks
    assert commands.count("find", LOCK) == batches
    assert commands.count("update", "model_config") == batches
    assert commands.count("update", JOURNAL) == batches
    # optimistic: the documents are never read when every guard matched
    assert not [c for c in commands.sent if c[1] == "model_config" and c[0] != "update"]
    # the journal: counted once, read in pages of the batch size
    assert commands.count("find", JOURNAL) == 1
    assert commands.count("getMore", JOURNAL) <= batches
    assert {e["state"] for e in db[JOURNAL].find()} == {journal_mod.EntryState.RESTORED}
    # the after-image (the new key with it) leaves the journal with the restore
    assert db[JOURNAL].count_documents({"after": {"$exists": True}}) == 0


def test_an_edit_between_the_journal_and_the_guarded_write_is_never_overwritten(
    sync_client: Any, mongo_uri: str, db_name: str
) -> None:
    """The app edits two documents of the batch right after the journal insert returns
    and before the guarded bulk write is sent: one in a migrated field (the guard misses:
    the document is left alone; its journal entry is kept, marked unsure, because the
    document no longer tells whether the edit came before or after our write, so the
    rollback reports it instead of restoring over the edit), one in a field the migration
    does not touch (the guard still matches: migrated, the app's field kept)."""
    db = sync_client[db_name]
    _seed(db, 20)
    original = raw_fingerprint(db)
    commands = Commands()
    edited: list[int] = []

    def edit(name: str, coll: str) -> None:
        if (name, coll) == ("insert", JOURNAL) and not edited:
            db.model_config.update_one({"_id": 3}, {"$set": {"models.0.model_url": EDITED_URL}})
            db.model_config.update_one({"_id": 4}, {"$set": {"models.0.temperature": 0.9}})
            edited.append(1)

    commands.on_reply = edit
    result = asyncio.run(_run(mongo_uri, db_name, "apply", 10, commands=commands))
    assert edited
    assert result.migrations[0].status == "applied"
    doc3 = db.model_config.find_one({"_id": 3})
    assert doc3["models"][0]["model_url"] == EDITED_URL  # the app's edit won
    assert doc3["models"][0]["api_key"] == "sk-test-virtual-003"  # our write never landed
    doc4 = db.model_config.find_one({"_id": 4})
    assert doc4["models"][0]["model_url"] == DIRECT and doc4["models"][0]["temperature"] == 0.9
    entry3 = db[JOURNAL].find_one({"doc_id": 3})
    assert entry3["unsure"] is True and entry3["state"] == journal_mod.EntryState.APPLIED
    assert "after" not in entry3  # the rollback decides it from the document
    # only the batch whose guard missed read its documents (once, one chunk); the other
    # batch sent no read and no journal update
    assert commands.count("find", "model_config") == 1 + 1  # the stream + that batch
    assert commands.count("update", JOURNAL) == 1
    edited_state = raw_fingerprint(db)

    back = asyncio.run(_run(mongo_uri, db_name, "rollback", 10))
    assert [(c.doc_id, c.reason) for c in back.conflicts] == [(3, "changed")]
    after = raw_fingerprint(db)["model_config"]
    changed = {_doc_of(k) for k in after if after[k] != original["model_config"][k]}
    # exactly the two edited documents differ from the original: 3 left alone (its edit
    # stands), 4 restored in the migrated fields only (its temperature edit stands)
    assert changed == {3, 4}
    key3 = next(k for k in after if _doc_of(k) == 3)
    assert after[key3] == edited_state["model_config"][key3]
    assert db.model_config.find_one({"_id": 4})["models"][0] == {
        **original_doc(4)["models"][0],
        "temperature": 0.9,
    }


def test_optimistic_rollback_tells_conflicts_from_already_restored(
    sync_client: Any, mongo_uri: str, db_name: str
) -> None:
    """After the rewrite the app edits a migrated field of one document and deletes
    another; a third already holds its before-image (a rollback that died before marking
    its journal entry). The guarded restores miss those three; the batch that holds them,
    and only it, reads its documents: two conflicts (left alone, exit-6 material), one
    already restored, every other document restored exactly. ``--force`` then restores
    the edited one and accepts the deleted one."""
    db = sync_client[db_name]
    _seed(db, 40)
    original = raw_fingerprint(db)["model_config"]
    asyncio.run(_run(mongo_uri, db_name, "apply", 500))
    db.model_config.update_one({"_id": 5}, {"$set": {"models.0.model_url": EDITED_URL}})
    edited = raw_fingerprint(db)["model_config"]
    db.model_config.delete_one({"_id": 6})
    entry = db[JOURNAL].find_one({"doc_id": 7})
    db.model_config.update_one({"_id": 7}, {"$set": {i["p"]: i["v"] for i in entry["before"]}})

    commands = Commands()
    result = asyncio.run(_run(mongo_uri, db_name, "rollback", 10, commands=commands))
    stats = next(iter(result.stats.values()))
    assert (stats.restored, stats.already, stats.conflicts) == (37, 1, 2)
    assert sorted((c.doc_id, c.reason) for c in result.conflicts) == [
        (5, "changed"),
        (6, "deleted"),
    ]
    assert result.migrations[0].status == "partially_rolled_back"
    # 4 batches (newest first: ids 39..30, 29..20, 19..10, 9..0); one of them missed
    assert commands.count("update", "model_config") == 4
    assert commands.count("find", "model_config") == 1
    states = {e["doc_id"]: e["state"] for e in db[JOURNAL].find()}
    assert states[5] == states[6] == journal_mod.EntryState.CONFLICT
    assert db[JOURNAL].count_documents({"after": {"$exists": True}}) == 0
    assert {s for d, s in states.items() if d not in (5, 6)} == {journal_mod.EntryState.RESTORED}
    now = raw_fingerprint(db)["model_config"]
    keys = {_doc_of(k): k for k in now}
    assert now[keys[5]] == edited[keys[5]]  # the app's edit survived
    assert all(now[k] == original[k] for d, k in keys.items() if d != 5)
    assert len(now) == 39

    forced = asyncio.run(_run(mongo_uri, db_name, "rollback", 10, force=True))
    fstats = next(iter(forced.stats.values()))
    assert (fstats.restored, fstats.forced, fstats.gone, fstats.conflicts) == (1, 1, 1, 0)
    now = raw_fingerprint(db)["model_config"]
    assert now == {k: v for k, v in original.items() if k in now} and len(now) == 39


def _doc_of(key_hex: str) -> Any:
    from bson import decode

    return decode(bytes.fromhex(key_hex))["_id"]


def test_journal_entries_without_an_after_image_are_still_rolled_back_exactly(
    sync_client: Any, mongo_uri: str, db_name: str
) -> None:
    """Entries written before the journal recorded after-images take the read-then-decide
    path (the recorded hash of the after-image decides), with the same result."""
    db = sync_client[db_name]
    _seed(db, 40)
    original = raw_fingerprint(db)
    asyncio.run(_run(mongo_uri, db_name, "apply", 500))
    db[JOURNAL].update_many({}, {"$unset": {"after": ""}})
    db.model_config.update_one({"_id": 9}, {"$set": {"models.0.api_key": "sk-test-edit-0000"}})
    commands = Commands()
    result = asyncio.run(_run(mongo_uri, db_name, "rollback", 16, commands=commands))
    assert [c.doc_id for c in result.conflicts] == [9]
    assert commands.count("find", "model_config") == 3  # each batch read its documents
    now = raw_fingerprint(db)["model_config"]
    assert sum(1 for k, v in now.items() if v != original["model_config"][k]) == 1


async def test_chunked_reads_go_out_at_the_same_time() -> None:
    """``fetch_docs`` splits long id lists into ``$in`` chunks and sends them all at once:
    each fake read below waits until every chunk's read has started, so reads sent one
    after another would never finish (pure logic: the wire server cannot show overlap
    deterministically)."""
    ids = list(range(5 * journal_mod.IN_CHUNK + 3))
    parts = len(journal_mod.chunks(ids))
    started = 0
    everyone = asyncio.Event()

    class Cursor:
        def __init__(self, flt: dict[str, Any]) -> None:
            self.ids = flt["_id"]["$in"]

        async def to_list(self, length: Any) -> list[dict[str, Any]]:
            nonlocal started
            started += 1
            if started == parts:
                everyone.set()
            await everyone.wait()
            return [{"_id": i, "x": i} for i in self.ids]

    class Coll:
        def find(self, flt: dict[str, Any], projection: Any, session: Any = None) -> Cursor:
            return Cursor(flt)

    class Db:
        def __getitem__(self, name: str) -> Coll:
            return Coll()

    docs = await asyncio.wait_for(
        journal_mod.fetch_docs(Db(), "c", ids, {"x"}),  # type: ignore[arg-type]
        timeout=5,
    )
    assert started == parts == 6
    assert len(docs) == len(ids)
