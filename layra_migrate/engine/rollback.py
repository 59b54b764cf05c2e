"""Replaying the journal backwards: restore before-images, never clobber later edits.

For each journaled document (newest first) the migrated paths are read:

- equal to the before-image already -> restored (a re-run after a crash);
- hash equal to the recorded after-image -> restore the before-image, guarded
  by a filter on the values just read, so an edit racing the restore wins;
- anything else -> a conflict: left alone and reported, unless ``force``.

Only the journaled paths are written (``$set`` / ``$unset``): a field the
migration did not touch, changed by the app since, survives the rollback.
"""

from __future__ import annotations

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
        return {"migration": self.migration, "collection": self.collection,
                "doc_id": str(self.doc_id), "fields": self.fields, "reason": self.reason}


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
        return {"migration": self.migration, "collection": self.collection,
                "doc_id": str(self.doc_id), "field": self.path, "current": self.now,
                "restored": self.restored}


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
        return {"restored": self.restored, "already_restored": self.already,
                "conflicts": self.conflicts, "forced": self.forced, "deleted": self.gone}


MAX_LISTED_CONFLICTS = 1000


async def replay(db: AsyncDatabase[dict[str, Any]], migration: str, *, force: bool,
                 dry_run: bool, lock: LeaseLock | None, progress: Progress | None = None,
                 stop: StopFlag | None = None, batch_size: int = 500) -> RollbackStats:
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

    async def process(entries: list[dict[str, Any]]) -> None:
        by_coll: dict[str, list[dict[str, Any]]] = {}
        for e in entries:
            by_coll.setdefault(e["collection"], []).append(e)
        jops: dict[Any, str] = {}  # entry _id -> new state, written grouped by state
        for coll, group in by_coll.items():
            paths = {i["p"] for e in group for i in e["before"]}
            docs = await fetch_docs(db, coll, [e["doc_id"] for e in group], paths)
            dops: list[Write] = []  # guarded restores, merged like the apply's writes
            dentries: list[dict[str, Any]] = []
            for e in group:
                before = decode_image(e["before"])
                cur = current_values(docs.get(id_key(e["doc_id"])), list(before))
                if cur is None:
                    # Deleted since: nothing to restore into. A conflict until --force
                    # accepts the loss of the document (the app deleted it, not us).
                    _note(stats, Conflict(migration, coll, e["doc_id"], sorted(before),
                                          "deleted"))
                    if force:
                        stats.gone += 1
                        jops[e["_id"]] = EntryState.ABANDONED
                    else:
                        stats.conflicts += 1
                        jops[e["_id"]] = EntryState.CONFLICT
                    continue
                if equal_images(cur, before):
                    stats.already += 1
                    jops[e["_id"]] = EntryState.RESTORED
                    continue
                intact = values_hash(cur.items()) == e["after_hash"]
                if not intact and not force:
                    stats.conflicts += 1
                    _note(stats, Conflict(migration, coll, e["doc_id"], sorted(before),
                                          "changed"))
                    jops[e["_id"]] = EntryState.CONFLICT
                    continue
                if not intact:
                    stats.forced += 1
                if dry_run:
                    for p in before:
                        stats.restores.append(Restore(migration, coll, e["doc_id"], p,
                                                      shown_value(p, cur[p]),
                                                      shown_value(p, before[p])))
                    stats.restored += 1
                    stats.cache_keys.update(e.get("cache_keys") or [])
                    continue
                # guarded by the values just read: an edit racing the restore wins
                dops.append(Write(coll, e["doc_id"], cur, before))
                dentries.append(e)
            if dops:
                if lock is not None:
                    await lock.ensure()
                res = await db[coll].bulk_write(grouped_updates(dops), ordered=False)
                if res.matched_count == len(dops):
                    for e in dentries:
                        stats.restored += 1
                        stats.cache_keys.update(e.get("cache_keys") or [])
                        jops[e["_id"]] = EntryState.RESTORED
                else:
                    # An edit raced the restore: decide each from the document again.
                    again = await fetch_docs(db, coll, [e["doc_id"] for e in dentries], paths)
                    for e in dentries:
                        before = decode_image(e["before"])
                        cur = current_values(again.get(id_key(e["doc_id"])), list(before))
                        if cur is not None and equal_images(cur, before):
                            stats.restored += 1
                            stats.cache_keys.update(e.get("cache_keys") or [])
                            jops[e["_id"]] = EntryState.RESTORED
                        else:
                            stats.conflicts += 1
                            _note(stats, Conflict(migration, coll, e["doc_id"], sorted(before),
                                                  "changed"))
                            jops[e["_id"]] = EntryState.CONFLICT
        if jops and not dry_run:
            await journal.bulk_write(state_updates(jops), ordered=True)
        progress.advance(task, len(entries))

    async for e in cursor:
        key = (e["collection"], id_key(e["doc_id"]))
        if key in seen or len(batch) >= batch_size:
            await process(batch)
            batch, seen = [], set()
            if stop.requested:
                raise Interrupted("interrupted: rollback stopped after the current batch",
                                  hint="re-run `layra-migrate rollback` to finish")
        batch.append(e)
        seen.add(key)
    if batch:
        await process(batch)
    progress.finish(task)
    return stats


def _note(stats: RollbackStats, c: Conflict) -> None:
    if len(stats.conflict_list) < MAX_LISTED_CONFLICTS:
        stats.conflict_list.append(c)
