"""The journal: before-images of exactly the fields a migration changes.

Order of a batch without transactions (safe to kill at any point):

1. insert the journal entries, state ``pending``: before-image of every
   changed path, the after-image and its hash, the Redis keys of the document
   (one ``insert`` command);
2. write the documents, each update guarded by a filter that matches only
   while the fields still hold their before-image (no lost updates): one
   ``bulk_write`` per collection, the collections concurrently.

A batch costs the same commands whatever its size; only when a guarded write
did not match (a concurrent edit) are that batch's documents read, in
concurrent chunks.

There is no third "mark applied" write per entry: it would cost more than the
journal itself. An entry's state is a hint; the document decides. Rollback
treats a document that already holds the before-image as done (never written,
or already restored), one that holds the after-image as to be restored, and
anything else as a conflict. After a crash, :func:`recover` settles the
entries of the dead run from the documents: after-image -> ``applied``;
before-image -> dropped (the re-run writes it again); anything else -> kept,
so rollback reports the conflict instead of silently losing a before-image.
With a replica set each batch runs in one transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from layra_migrate import toolstate
from layra_migrate.engine.lock import now
from layra_migrate.engine.paths import (
    MISSING,
    cas_filter,
    get_path,
    same_value,
    set_unset,
    top_fields,
    values_hash,
)

if TYPE_CHECKING:
    from pymongo.asynchronous.client_session import AsyncClientSession
    from pymongo.asynchronous.database import AsyncDatabase

T = TypeVar("T")


class EntryState(StrEnum):
    """A journal entry's state (the ``state`` field of each entry)."""

    WRITTEN = "written"  # journaled, then written (or, after a crash, maybe not: see recover)
    APPLIED = "applied"
    RESTORED = "restored"
    CONFLICT = "conflict"
    ABANDONED = "abandoned"  # the document disappeared before anything could be restored


@dataclass
class Write:
    """One document's change, as a migration asked for it."""

    collection: str
    doc_id: Any
    before: dict[str, Any]  # path -> value (MISSING when absent)
    after: dict[str, Any]
    cache_keys: list[str] = field(default_factory=list)
    label: dict[str, str] = field(default_factory=dict)

    @property
    def after_hash(self) -> str:
        return values_hash(self.after.items())


def encode_image(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"p": p, "m": True} if v is MISSING else {"p": p, "v": v} for p, v in values.items()]


def decode_image(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {i["p"]: MISSING if i.get("m") else i.get("v") for i in items}


def entry_id(migration: str, run_no: int, seq: int) -> str:
    """Entries sort in replay order by ``_id`` alone: no secondary index to maintain
    (on some servers index upkeep costs more than the journal insert itself)."""
    return f"{migration}:{run_no:010d}:{seq:010d}"


def id_range(migration: str) -> dict[str, str]:
    """The ``_id`` range holding one migration's entries (``;`` sorts right after ``:``)."""
    return {"$gt": f"{migration}:", "$lt": f"{migration};"}


def entry_doc(
    w: Write, migration: str, run_no: int, seq: int, run_id: str, state: str
) -> dict[str, Any]:
    return {
        "_id": entry_id(migration, run_no, seq),
        "migration": migration,
        "run": run_id,
        "run_no": run_no,
        "seq": seq,
        "collection": w.collection,
        "doc_id": w.doc_id,
        "before": encode_image(w.before),
        "after": encode_image(w.after),
        "after_hash": w.after_hash,
        "cache_keys": w.cache_keys,
        "label": w.label,
        "state": state,
        "at": now(),
    }


def current_values(doc: dict[str, Any] | None, paths: Sequence[str]) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {p: get_path(doc, p) for p in paths}


def equal_images(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(same_value(a[p], b[p]) for p in a)


async def fetch_docs(
    db: AsyncDatabase[dict[str, Any]],
    collection: str,
    ids: list[Any],
    paths: set[str],
    session: AsyncClientSession | None = None,
) -> dict[Any, dict[str, Any]]:
    """The documents (only the top-level fields the paths need), keyed by a hashable id.

    The ids go out in ``$in`` lists of at most :data:`IN_CHUNK`, all chunks at once (one
    round trip of latency, not one per chunk); inside a transaction (one session, which
    must not run two commands at a time) one after another."""
    from bson import encode

    projection = top_fields(paths) or {"_id": 1}

    async def one(part: Sequence[Any]) -> list[dict[str, Any]]:
        cursor = db[collection].find({"_id": {"$in": list(part)}}, projection, session=session)
        return await cursor.to_list(None)

    parts = chunks(ids)
    if session is not None or len(parts) <= 1:
        found = [await one(part) for part in parts]
    else:
        found = await gather_all([one(part) for part in parts])
    return {encode({"_id": d["_id"]}): d for docs in found for d in docs}


async def gather_all(aws: Sequence[Awaitable[T]]) -> list[T]:
    """``asyncio.gather`` that lets every awaitable finish before raising the first error
    (no write is left running unobserved behind an exception)."""
    import asyncio

    results = await asyncio.gather(*aws, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results  # type: ignore[return-value]


IN_CHUNK = 32
"""Most ids one ``$in`` carries. Servers that match ``$in`` by a linear scan of the list
(SecantusDB does) pay list-length x documents: measured on 500 documents, ``$in`` lists of
25-50 ids cost 0.12-0.15 s, 200 ids 0.43-0.75 s, 500 ids 0.8-2.5 s. A real mongod is not
hurt by short lists either (see docs/PERFORMANCE.md)."""


def chunks(items: Sequence[Any], size: int = IN_CHUNK) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def id_key(doc_id: Any) -> bytes:
    from bson import encode

    return encode({"_id": doc_id})


@dataclass
class Settled:
    applied: int = 0
    dropped: set[Any] = field(default_factory=set)  # entry ``_id``s deleted: never written


async def settle(
    db: AsyncDatabase[dict[str, Any]],
    entries: list[dict[str, Any]],
    session: AsyncClientSession | None = None,
) -> Settled:
    """Decide ``pending`` entries from the documents (read in concurrent chunks, the
    collections concurrently; one ``bulk_write`` of journal states)."""
    from pymongo import DeleteOne, UpdateOne

    journal = db[toolstate.JOURNAL]
    ops: list[Any] = []
    out = Settled()
    by_coll: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_coll.setdefault(e["collection"], []).append(e)
    reads = [
        fetch_docs(
            db,
            coll,
            [e["doc_id"] for e in group],
            {i["p"] for e in group for i in e["before"]},
            session,
        )
        for coll, group in by_coll.items()
    ]
    if session is not None:
        found = [await r for r in reads]
    else:
        found = await gather_all(reads)
    for group, docs in zip(by_coll.values(), found, strict=True):
        for e in group:
            before = decode_image(e["before"])
            cur = current_values(docs.get(id_key(e["doc_id"])), list(before))
            if cur is None:
                ops.append(UpdateOne({"_id": e["_id"]}, mark(EntryState.ABANDONED)))
                out.dropped.add(e["_id"])
            elif values_hash(cur.items()) == e["after_hash"]:
                ops.append(UpdateOne({"_id": e["_id"]}, {"$set": {"state": EntryState.APPLIED}}))
                out.applied += 1
            elif equal_images(cur, before):
                ops.append(DeleteOne({"_id": e["_id"]}))
                out.dropped.add(e["_id"])
            else:
                # Changed by someone else after (or instead of) our write: keep the
                # before-image; rollback will report the document as a conflict.
                ops.append(
                    UpdateOne(
                        {"_id": e["_id"]},
                        {
                            "$set": {"state": EntryState.APPLIED, "unsure": True},
                            "$unset": {"after": ""},
                        },
                    )
                )
                out.applied += 1
    if ops:
        await journal.bulk_write(ops, ordered=True, session=session)
    return out


async def recover(db: AsyncDatabase[dict[str, Any]], runs: list[str], batch: int = 500) -> int:
    """Settle every ``pending`` entry the given (crashed) runs left. Returns how many."""
    journal = db[toolstate.JOURNAL]
    total = 0
    if not runs:
        return 0
    while True:
        entries = (
            await journal.find({"run": {"$in": runs}, "state": EntryState.WRITTEN})
            .limit(batch)
            .to_list()
        )
        if not entries:
            return total
        total += len(entries)
        await settle(db, entries)


async def settle_restored(
    db: AsyncDatabase[dict[str, Any]], migration: str, batch: int = 500
) -> int:
    """After a rollback died between restoring documents and marking their entries
    (kill -9, lost server): a live entry (``written``/``applied``) whose document already
    holds the before-image is ``restored``. Call it after :func:`recover`, which settles
    the crashed runs' own unfinished writes first. Left ``applied``, a re-run of ``rewrite``
    would journal the document a second time, and an app edit made in between would later read as a
    rollback conflict of a document that was in fact restored. Returns how many."""
    from pymongo import UpdateOne

    journal = db[toolstate.JOURNAL]
    bounds = id_range(migration)
    last = bounds["$gt"]
    total = 0
    while True:
        entries = (
            await journal.find(
                {
                    "_id": {"$gt": last, "$lt": bounds["$lt"]},
                    "state": {"$in": [EntryState.WRITTEN, EntryState.APPLIED]},
                }
            )
            .sort("_id", 1)
            .limit(batch)
            .to_list()
        )
        if not entries:
            return total
        last = entries[-1]["_id"]
        by_coll: dict[str, list[dict[str, Any]]] = {}
        for e in entries:
            by_coll.setdefault(e["collection"], []).append(e)
        ops: list[Any] = []
        for coll, group in by_coll.items():
            paths = {i["p"] for e in group for i in e["before"]}
            docs = await fetch_docs(db, coll, [e["doc_id"] for e in group], paths)
            for e in group:
                before = decode_image(e["before"])
                cur = current_values(docs.get(id_key(e["doc_id"])), list(before))
                if cur is not None and equal_images(cur, before):
                    ops.append(UpdateOne({"_id": e["_id"]}, mark(EntryState.RESTORED)))
        if ops:
            await journal.bulk_write(ops, ordered=False)
            total += len(ops)


def grouped_updates(writes: list[Write]) -> list[Any]:
    """One guarded update per distinct (before-image, after-image), over all its documents.

    Real data repeats itself (one proxy URL spelling, the master key in most copies), so
    documents that change the same paths from the same values to the same values share
    one ``update_many`` whose filter still requires every before-value on each document:
    the same guarantee as one guarded ``update_one`` per document, in far fewer operations.
    """
    from pymongo import UpdateMany, UpdateOne

    from layra_migrate.engine.paths import encode_value

    groups: dict[tuple[Any, ...], list[Write]] = {}
    for w in writes:
        sig = tuple(
            (p, encode_value(w.before[p]), encode_value(w.after[p])) for p in sorted(w.before)
        )
        groups.setdefault(sig, []).append(w)
    ops: list[Any] = []
    for ws in groups.values():
        first = ws[0]
        for part in chunks(ws):
            if len(part) == 1:
                ops.append(
                    UpdateOne(cas_filter(part[0].doc_id, first.before), set_unset(first.after))
                )
            else:
                ops.append(
                    UpdateMany(
                        cas_filter({"$in": [w.doc_id for w in part]}, first.before),
                        set_unset(first.after),
                    )
                )
    return ops


LIVE = (EntryState.WRITTEN, EntryState.APPLIED)


def mark(state: str) -> dict[str, Any]:
    """The update that moves an entry to ``state``. Leaving the live states drops the
    after-image (the new values, new key included): the journal keeps it only while the
    document holds the same values, as the guard of the optimistic restore."""
    if state in LIVE:
        return {"$set": {"state": state}}
    return {"$set": {"state": state}, "$unset": {"after": ""}}


def state_updates(states: dict[Any, str]) -> list[Any]:
    """Journal entries' new states (entry ``_id`` -> state) as few writes as possible
    (one ``update`` command: every statement is an update)."""
    from pymongo import UpdateMany, UpdateOne

    by_state: dict[str, list[Any]] = {}
    for eid, state in states.items():
        by_state.setdefault(state, []).append(eid)
    ops: list[Any] = []
    for state, ids in by_state.items():
        for part in chunks(ids):
            ops.append(
                UpdateOne({"_id": part[0]}, mark(state))
                if len(part) == 1
                else UpdateMany({"_id": {"$in": list(part)}}, mark(state))
            )
    return ops


@dataclass
class BatchOutcome:
    written: list[Write]
    skipped: list[Write]  # the document changed between read and write: not written


async def write_batch(
    db: AsyncDatabase[dict[str, Any]],
    writes: list[Write],
    *,
    migration: str,
    run_id: str,
    run_no: int,
    seq_start: int,
    session: AsyncClientSession | None = None,
) -> BatchOutcome:
    """Journal first, then the guarded document writes.

    Commands, whatever the batch size: one journal ``insert``, then one guarded
    ``bulk_write`` per collection (the collections concurrently). Only when a guarded
    write did not match is anything read: the batch's documents, to settle each entry."""
    journal = db[toolstate.JOURNAL]
    docs = [
        entry_doc(w, migration, run_no, seq_start + i, run_id, EntryState.WRITTEN)
        for i, w in enumerate(writes)
    ]
    await journal.insert_many(docs, ordered=True, session=session)
    by_coll: dict[str, list[Write]] = {}
    for w in writes:
        by_coll.setdefault(w.collection, []).append(w)
    bulks = [
        db[coll].bulk_write(grouped_updates(group), ordered=False, session=session)
        for coll, group in by_coll.items()
    ]
    if session is not None:
        results = [await b for b in bulks]
    else:
        results = await gather_all(bulks)
    if sum(r.matched_count for r in results) == len(writes):
        return BatchOutcome(list(writes), [])
    # Some guarded writes did not match: decide each from the document.
    dropped = (await settle(db, docs, session)).dropped
    written = [w for w, d in zip(writes, docs, strict=True) if d["_id"] not in dropped]
    skipped = [w for w, d in zip(writes, docs, strict=True) if d["_id"] in dropped]
    return BatchOutcome(written, skipped)
