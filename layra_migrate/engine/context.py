"""The context a migration's ``up(ctx)`` / ``down(ctx)`` receives: its only way to write.

``await ctx.set_fields(collection, doc_id, {path: new}, expect={path: old})``
journals the before-image of exactly those paths, then writes them guarded by
``expect``. Writes are buffered and flushed in batches; before each batch the
lease lock is checked, and after each batch a Ctrl-C request stops the run.
A full batch is written in the background while the migration reads and prepares
the next one (at most one batch in flight, batches written one at a time, in
order; within a batch the journal is still written before the documents).
In a dry run nothing is written: each change is recorded (keys masked).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from layra_migrate import redact
from layra_migrate.engine.journal import Write, id_key, write_batch
from layra_migrate.engine.paths import MISSING, get_path, same_value, top_fields
from layra_migrate.errors import Interrupted
from layra_migrate.progress import NullProgress, Progress

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from layra_migrate.engine.discovery import Migration
    from layra_migrate.engine.lock import LeaseLock
    from layra_migrate.plan import KeyValues, Plan

DEFAULT_BATCH = 500

__all__ = [
    "DEFAULT_BATCH",
    "NullProgress",
    "Progress",
    "StopFlag",
    "Change",
    "WriteStats",
    "MigrationContext",
    "UpContext",
    "shown_value",
]


class StopFlag:
    """Set by the CLI's signal handler; checked after every batch."""

    def __init__(self) -> None:
        self.requested = False

    def set(self) -> None:
        self.requested = True


def shown_value(path: str, value: Any) -> Any:
    """A value as it may be displayed: keys masked, URL credentials masked."""
    if value is MISSING:
        return "(absent)"
    last = path.rsplit(".", 1)[-1]
    if last in redact.KEY_FIELDS:
        return redact.mask_secret(value) if value is not None else None
    if isinstance(value, str):
        return redact.scrub(str(redact.mask_url(value)))
    return redact.scrub_obj(redact.mask_fields(value))


@dataclass(frozen=True)
class Change:
    """One field of one document in a dry run, masked for display."""

    migration: str
    collection: str
    doc_id: Any
    path: str
    before: Any
    after: Any
    label: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "migration": self.migration,
            "collection": self.collection,
            "doc_id": str(self.doc_id),
            "field": self.path,
            "before": self.before,
            "after": self.after,
            **self.label,
        }


@dataclass
class WriteStats:
    documents: int = 0
    fields: int = 0
    skipped: int = 0  # changed concurrently between read and write: left alone
    batches: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "documents": self.documents,
            "fields": self.fields,
            "skipped": self.skipped,
            "batches": self.batches,
        }


class MigrationContext:
    """The engine's context behind :class:`~layra_migrate.engine.api.DownAPI` (what
    ``down(ctx)`` receives). Migrations use only the Protocol's members; ``stats``,
    ``changes`` and ``cache_keys`` are what the engine reads back after a run; the rest
    is private."""

    MISSING = MISSING

    def __init__(
        self,
        *,
        db: AsyncDatabase[dict[str, Any]],
        migration: Migration,
        dry_run: bool,
        progress: Progress | None = None,
        lock: LeaseLock | None = None,
        run_id: str = "",
        run_no: int = 0,
        batch_size: int = DEFAULT_BATCH,
        stop: StopFlag | None = None,
        client: Any = None,
        transactions: bool = False,
    ) -> None:
        self.db = db
        self._migration = migration
        self.dry_run = dry_run
        self._progress: Progress = progress or NullProgress()
        self.logger = logging.getLogger(f"layra_migrate.migrations.{migration.id}")
        self._batch_size = max(1, batch_size)
        self.stats = WriteStats()
        self.changes: list[Change] = []
        self.cache_keys: set[str] = set()
        self._lock = lock
        self._run_id = run_id
        self._run_no = run_no
        self._seq = 0
        self._buffer: list[Write] = []
        self._buffered_ids: set[tuple[str, bytes]] = set()
        self._stop = stop or StopFlag()
        self._client = client
        self._transactions = transactions
        self._inflight: asyncio.Task[None] | None = None

    @property
    def progress(self) -> Progress:
        """Where a long step reports (the run's progress display)."""
        return self._progress

    @property
    def skipped(self) -> int:
        """Documents left alone because they changed while migrating."""
        return self.stats.skipped

    # -- reading --------------------------------------------------------------------------
    async def stream(
        self,
        collection: str,
        filter: Mapping[str, Any] | None = None,
        projection: Mapping[str, Any] | None = None,
        *,
        task: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Documents in ``_id`` order, fetched in batches (bounded memory), with progress."""
        name = task or collection
        total = await self.db[collection].estimated_document_count()
        self._progress.start(name, total)
        cursor = (
            self.db[collection]
            .find(
                dict(filter or {}),
                dict(projection) if projection else None,
                batch_size=self._batch_size,
            )
            .sort("_id", 1)
        )
        async for doc in cursor:
            if self._stop.requested:
                await self.flush()  # writes the batch in hand, then raises Interrupted
            yield doc
            self._progress.advance(name)
        self._progress.finish(name)

    # -- writing --------------------------------------------------------------------------
    async def set_fields(
        self,
        collection: str,
        doc_id: Any,
        changes: Mapping[str, Any],
        expect: Mapping[str, Any] | None = None,
        *,
        cache_keys: list[str] | tuple[str, ...] = (),
        label: Mapping[str, str] | None = None,
        field_labels: Mapping[str, Mapping[str, str]] | None = None,
    ) -> bool:
        """Change some fields of one document, journaled and reversible.

        ``changes`` maps dotted paths to new values (``MISSING`` removes a field);
        ``expect`` maps the same paths to the values they hold now (read from the
        document you streamed). Without ``expect`` the current values are read.
        Paths whose value would not change are ignored. ``cache_keys`` are Layra's
        Redis keys holding a copy of this document (deleted after the run);
        ``label`` / ``field_labels`` annotate the dry-run diff (document-wide / per
        path, e.g. ``{"location": ..., "model": ...}``). Returns whether anything
        will be written.
        """
        if not changes:
            return False
        if expect is None:
            doc = await self.db[collection].find_one({"_id": doc_id}, top_fields(changes))
            expect = {p: get_path(doc, p) if doc else MISSING for p in changes}
        missing = [p for p in changes if p not in expect]
        if missing:
            raise ValueError(f"set_fields: expect lacks {', '.join(missing)}")
        before = {p: expect[p] for p in changes if not same_value(expect[p], changes[p])}
        if not before:
            return False
        after = {p: changes[p] for p in before}
        key = (collection, id_key(doc_id))
        if key in self._buffered_ids:
            await self.flush()
        write = Write(collection, doc_id, before, after, list(cache_keys), dict(label or {}))
        if self.dry_run:
            for p in before:
                labels = dict(label or {})
                labels.update((field_labels or {}).get(p, {}))
                self.changes.append(
                    Change(
                        self._migration.id,
                        collection,
                        doc_id,
                        p,
                        shown_value(p, before[p]),
                        shown_value(p, after[p]),
                        labels,
                    )
                )
            self.stats.documents += 1
            self.stats.fields += len(before)
            self.cache_keys.update(cache_keys)
            return True
        self._buffer.append(write)
        self._buffered_ids.add(key)
        if len(self._buffer) >= self._batch_size:
            await self._drain()  # the previous batch is written (or its error raised) first
            self._inflight = asyncio.create_task(self._write(self._take()))
        return True

    def _take(self) -> list[Write]:
        writes, self._buffer = self._buffer, []
        self._buffered_ids.clear()
        return writes

    async def _drain(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def settle_inflight(self) -> None:
        """After an error elsewhere: let a batch still being written finish (its own
        error, if any, is dropped: the original one matters more)."""
        try:
            await self._drain()
        except BaseException:  # noqa: BLE001
            pass

    async def flush(self) -> None:
        """Write the buffered batch now and wait for every batch in flight (the runner
        also calls it after ``up`` returns)."""
        await self._drain()
        if self._buffer:
            await self._write(self._take())
        if self._stop.requested:
            raise Interrupted(
                "interrupted: stopped after the current batch; the run is resumable",
                hint="re-run `layra-migrate rewrite` to finish, or "
                "`layra-migrate rollback` to undo what was written",
            )

    async def _write(self, writes: list[Write]) -> None:
        if writes:
            if self._lock is not None:
                await self._lock.ensure()
            if self._transactions and self._client is not None:
                async with self._client.start_session() as session:
                    async with await session.start_transaction():
                        outcome = await write_batch(
                            self.db,
                            writes,
                            migration=self._migration.id,
                            run_id=self._run_id,
                            run_no=self._run_no,
                            seq_start=self._seq,
                            session=session,
                        )
            else:
                outcome = await write_batch(
                    self.db,
                    writes,
                    migration=self._migration.id,
                    run_id=self._run_id,
                    run_no=self._run_no,
                    seq_start=self._seq,
                )
            self._seq += len(writes)
            self.stats.batches += 1
            self.stats.documents += len(outcome.written)
            self.stats.fields += sum(len(w.before) for w in outcome.written)
            self.stats.skipped += len(outcome.skipped)
            for w in outcome.written:
                self.cache_keys.update(w.cache_keys)
            for w in outcome.skipped:
                self.logger.warning(
                    "%s %s changed while migrating; left alone", w.collection, w.doc_id
                )


class UpContext(MigrationContext):
    """The context behind :class:`~layra_migrate.engine.api.MigrationAPI` (what
    ``up(ctx)`` receives): also the reviewed plan and the key values."""

    def __init__(self, *, plan: Plan, keys: KeyValues, **kw: Any) -> None:
        super().__init__(**kw)
        self.plan = plan
        self.keys = keys
