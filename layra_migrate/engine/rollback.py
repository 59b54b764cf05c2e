"""Replaying the journal backwards: restore before-images, never clobber later edits.

Optimistic guarded restores: each document whose migrated paths still hold the
after-image the journal recorded gets its before-image back, in one guarded write
per group of documents sharing the same images (the guard is the after-image
itself, so an edit made since, or racing the restore, is never overwritten): one
``bulk_write`` per collection per batch, no read first. Only when a batch's guarded
writes matched fewer documents than it has entries are that batch's documents read,
to tell the cases apart:

- equal to the before-image -> restored (now, or already: a re-run after a crash);
- hash equal to the recorded after-image -> restore it, guarded by the values just read;
- anything else -> a conflict: left alone and reported, unless ``force``.

Entries written before the journal recorded after-images, and dry runs, take that
read-then-decide path for every document. The journal marks of a batch are one
``update`` command. Only the journaled paths are written (``$set`` / ``$unset``): a
field the migration did not touch, changed by the app since, survives the rollback.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from layra_migrate import toolstate
from layra_migrate.engine.context import NullProgress, Progress, StopFlag, shown_value
from layra_migrate.engine.journal import (
    EntryState,
    Write,
    current_values,
    decode_image,
    equal_images,
    fetch_docs,
    gather_all,
    grouped_updates,
    id_key,
    id_range,
    state_updates,
)
from layra_migrate.engine.paths import values_hash
from layra_migrate.errors import Interrupted

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from layra_migrate.engine.lock import LeaseLock


@dataclass(frozen=True)
class Conflict:
    migration: str
    collection: str
    doc_id: Any
    fields: list[str]  # paths whose value no longer matches what the migration wrote
    reason: str  # changed | deleted

    def as_dict(self) -> dict[str, Any]:
        return {
            "migration": self.migration,
            "collection": self.collection,
            "doc_id": str(self.doc_id),
            "fields": self.fields,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Restore:
    """A dry-run line: one field that would be restored (masked)."""

    migration: str
    collection: str
    doc_id: Any
    path: str
    now: Any
    restored: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "migration": self.migration,
            "collection": self.collection,
            "doc_id": str(self.doc_id),
            "field": self.path,
            "current": self.now,
            "restored": self.restored,
        }


@dataclass
class RollbackStats:
    restored: int = 0
    already: int = 0
    conflicts: int = 0
    forced: int = 0
    gone: int = 0
    conflict_list: list[Conflict] = field(default_factory=list)
    restores: list[Restore] = field(default_factory=list)
    cache_keys: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, int]:
        return {
            "restored": self.restored,
            "already_restored": self.already,
            "conflicts": self.conflicts,
            "forced": self.forced,
            "deleted": self.gone,
        }


MAX_LISTED_CONFLICTS = 1000


async def replay(
    db: AsyncDatabase[dict[str, Any]],
    migration: str,
    *,
    force: bool,
    dry_run: bool,
    lock: LeaseLock | None,
    progress: Progress | None = None,
    stop: StopFlag | None = None,
    batch_size: int = 500,
) -> RollbackStats:
    journal = db[toolstate.JOURNAL]
    progress = progress or NullProgress()
    stop = stop or StopFlag()
    stats = RollbackStats()
    live = [EntryState.WRITTEN, EntryState.APPLIED, EntryState.CONFLICT]
    flt = {"_id": id_range(migration), "state": {"$in": live}}
    task = f"{migration}: rollback"
    progress.start(task, await journal.count_documents(flt))
    cursor = journal.find(flt, batch_size=batch_size).sort("_id", -1)  # newest first
    batch: list[dict[str, Any]] = []
    seen: set[tuple[str, bytes]] = set()
    replayer = _Replayer(db, migration, force=force, dry_run=dry_run, lock=lock, stats=stats)
    # The next page of the journal is read while a batch is being restored.
    pages: asyncio.Queue[list[dict[str, Any]] | Exception | None] = asyncio.Queue(1)

    async def read_ahead() -> None:
        try:
            while page := await cursor.to_list(batch_size):
                await pages.put(page)
            await pages.put(None)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer (not a cancel)
            await pages.put(exc)

    reader = asyncio.create_task(read_ahead())
    try:
        while (page := await pages.get()) is not None:
            if isinstance(page, Exception):
                raise page
            for e in page:
                key = (e["collection"], id_key(e["doc_id"]))
                if key in seen or len(batch) >= batch_size:
                    await replayer.process(batch)
                    progress.advance(task, len(batch))
                    batch, seen = [], set()
                    if stop.requested:
                        raise Interrupted(
                            "interrupted: rollback stopped after the current batch",
                            hint="re-run `layra-migrate rollback` to finish",
                        )
                batch.append(e)
                seen.add(key)
        if batch:
            await replayer.process(batch)
            progress.advance(task, len(batch))
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        with contextlib.suppress(Exception):
            await cursor.close()
    progress.finish(task)
    return stats


class _Replayer:
    """Restores one batch of journal entries (each document at most once per batch)."""

    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        migration: str,
        *,
        force: bool,
        dry_run: bool,
        lock: LeaseLock | None,
        stats: RollbackStats,
    ) -> None:
        self.db = db
        self.migration = migration
        self.force = force
        self.dry_run = dry_run
        self.lock = lock
        self.stats = stats

    async def process(self, entries: list[dict[str, Any]]) -> None:
        jops: dict[Any, str] = {}  # entry _id -> new state, written grouped by state
        optimistic = [] if self.dry_run else [e for e in entries if e.get("after") is not None]
        chosen = {e["_id"] for e in optimistic}
        decide = [e for e in entries if e["_id"] not in chosen]
        matched: dict[str, int] = {}
        if optimistic:
            by_coll = _by_collection(optimistic)
            if self.lock is not None:
                await self.lock.ensure()
            results = await gather_all(
                [
                    self._restore(
                        coll,
                        [
                            Write(
                                coll,
                                e["doc_id"],
                                decode_image(e["after"]),
                                decode_image(e["before"]),
                            )
                            for e in group
                        ],
                    )
                    for coll, group in by_coll.items()
                ]
            )
            for (coll, group), n in zip(by_coll.items(), results, strict=True):
                if n == len(group):
                    for e in group:
                        self._restored(e, jops)
                else:  # some guards did not match: read this collection's documents
                    matched[coll] = n
                    decide.extend(group)
        if decide:
            await self._decide(decide, matched, jops)
        if jops and not self.dry_run:
            await self.db[toolstate.JOURNAL].bulk_write(state_updates(jops), ordered=True)

    async def _restore(self, coll: str, writes: list[Write]) -> int:
        """One guarded ``bulk_write``: how many documents it matched."""
        if not writes:
            return 0
        res = await self.db[coll].bulk_write(grouped_updates(writes), ordered=False)
        return int(res.matched_count)

    def _restored(self, e: dict[str, Any], jops: dict[Any, str]) -> None:
        self.stats.restored += 1
        self.stats.cache_keys.update(e.get("cache_keys") or [])
        jops[e["_id"]] = EntryState.RESTORED

    def _conflict(
        self, e: dict[str, Any], before: dict[str, Any], reason: str, jops: dict[Any, str]
    ) -> None:
        self.stats.conflicts += 1
        _note(
            self.stats,
            Conflict(self.migration, e["collection"], e["doc_id"], sorted(before), reason),
        )
        jops[e["_id"]] = EntryState.CONFLICT

    async def _decide(
        self, entries: list[dict[str, Any]], matched: dict[str, int], jops: dict[Any, str]
    ) -> None:
        """Read the documents (concurrent chunks, the collections concurrently) and decide
        each entry from them. ``matched``: per collection, how many of these entries an
        optimistic restore just restored (they now hold the before-image, as do the ones
        restored earlier; the count tells the two apart)."""
        stats = self.stats
        by_coll = _by_collection(entries)
        found = await gather_all(
            [
                fetch_docs(
                    self.db,
                    coll,
                    [e["doc_id"] for e in group],
                    {i["p"] for e in group for i in e["before"]},
                )
                for coll, group in by_coll.items()
            ]
        )
        retry: dict[str, tuple[list[Write], list[dict[str, Any]]]] = {}
        for (coll, group), docs in zip(by_coll.items(), found, strict=True):
            holders = 0
            for e in group:
                before = decode_image(e["before"])
                cur = current_values(docs.get(id_key(e["doc_id"])), list(before))
                if cur is None:
                    # Deleted since: nothing to restore into. A conflict until --force
                    # accepts the loss of the document (the app deleted it, not us).
                    if self.force:
                        _note(
                            stats,
                            Conflict(self.migration, coll, e["doc_id"], sorted(before), "deleted"),
                        )
                        stats.gone += 1
                        jops[e["_id"]] = EntryState.ABANDONED
                    else:
                        self._conflict(e, before, "deleted", jops)
                    continue
                if equal_images(cur, before):
                    holders += 1
                    stats.cache_keys.update(e.get("cache_keys") or [])
                    jops[e["_id"]] = EntryState.RESTORED
                    continue
                intact = values_hash(cur.items()) == e["after_hash"]
                if not intact and not self.force:
                    self._conflict(e, before, "changed", jops)
                    continue
                if not intact:
                    stats.forced += 1
                if self.dry_run:
                    for p in before:
                        stats.restores.append(
                            Restore(
                                self.migration,
                                coll,
                                e["doc_id"],
                                p,
                                shown_value(p, cur[p]),
                                shown_value(p, before[p]),
                            )
                        )
                    stats.restored += 1
                    stats.cache_keys.update(e.get("cache_keys") or [])
                    continue
                # guarded by the values just read: an edit racing the restore wins
                writes, wentries = retry.setdefault(coll, ([], []))
                writes.append(Write(coll, e["doc_id"], cur, before))
                wentries.append(e)
            done = matched.get(coll, 0)  # restored by the optimistic write just now
            stats.restored += min(done, holders)
            stats.already += max(0, holders - done)
        if not retry:
            return
        if self.lock is not None:
            await self.lock.ensure()
        colls = list(retry)
        results = await gather_all([self._restore(c, retry[c][0]) for c in colls])
        raced: list[dict[str, Any]] = []
        for coll, n in zip(colls, results, strict=True):
            wentries = retry[coll][1]
            if n == len(wentries):
                for e in wentries:
                    self._restored(e, jops)
            else:
                raced.extend(wentries)
        if raced:  # an edit raced the restore: decide each from the document again
            by_coll = _by_collection(raced)
            again = await gather_all(
                [
                    fetch_docs(
                        self.db,
                        coll,
                        [e["doc_id"] for e in group],
                        {i["p"] for e in group for i in e["before"]},
                    )
                    for coll, group in by_coll.items()
                ]
            )
            for group, docs in zip(by_coll.values(), again, strict=True):
                for e in group:
                    before = decode_image(e["before"])
                    cur = current_values(docs.get(id_key(e["doc_id"])), list(before))
                    if cur is not None and equal_images(cur, before):
                        self._restored(e, jops)
                    else:
                        self._conflict(e, before, "changed", jops)


def _by_collection(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        out.setdefault(e["collection"], []).append(e)
    return out


def _note(stats: RollbackStats, c: Conflict) -> None:
    if len(stats.conflict_list) < MAX_LISTED_CONFLICTS:
        stats.conflict_list.append(c)
