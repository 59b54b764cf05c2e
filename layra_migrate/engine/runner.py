"""Applying pending migrations and rolling them back, with the safety machinery around.

``apply`` and ``rollback`` take a :class:`Store` (the database and client), the
discovered migrations and options; they return result dataclasses. The lease
lock is held for the whole run (not in a dry run, which writes nothing at all:
no ledger, lock or journal collection is created).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from layra_migrate import redact
from layra_migrate.engine import journal as journal_mod
from layra_migrate.engine.context import (
    DEFAULT_BATCH,
    Change,
    MigrationContext,
    NullProgress,
    Progress,
    StopFlag,
    UpContext,
)
from layra_migrate.engine.discovery import Migration
from layra_migrate.engine.ledger import (
    CAN_ROLL_BACK,
    NEEDS_UP,
    Direction,
    Ledger,
    LedgerState,
    MigrationState,
    RunStatus,
)
from layra_migrate.engine.lock import DEFAULT_TTL_S, LeaseLock, LockInfo, read_lock
from layra_migrate.engine.rollback import Conflict, Restore, RollbackStats, replay
from layra_migrate.errors import Interrupted, RefusedError, UsageError

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from layra_migrate.engine.cache import CacheResult, RedisCache
    from layra_migrate.plan import KeyValues, Plan


@dataclass
class Store:
    """Where a run reads and writes: the database, and the client for transactions."""

    db: AsyncDatabase[dict[str, Any]]
    client: Any = None
    transactions: bool = False


@dataclass
class RunOptions:
    dry_run: bool = False
    batch_size: int = DEFAULT_BATCH
    lock_ttl_s: float = DEFAULT_TTL_S
    progress: Progress = field(default_factory=NullProgress)
    stop: StopFlag = field(default_factory=StopFlag)
    cache: RedisCache | None = None
    command: str = "rewrite"


class Outcome(StrEnum):
    """What a run did with one migration (``MigrationOutcome.status``)."""

    APPLIED = "applied"
    WOULD_APPLY = "would_apply"  # dry run
    ALREADY_APPLIED = "already_applied"
    ROLLED_BACK = "rolled_back"
    PARTIALLY_ROLLED_BACK = "partially_rolled_back"  # conflicts left alone
    WOULD_ROLL_BACK = "would_roll_back"  # dry run


@dataclass
class MigrationOutcome:
    id: str
    description: str
    status: Outcome
    documents: int = 0
    fields: int = 0
    skipped: int = 0
    recovered: int = 0  # pending journal entries a crashed run left, settled first
    resumed: bool = False
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "status": self.status,
            "documents": self.documents,
            "fields": self.fields,
            "skipped": self.skipped,
            "recovered": self.recovered,
            "resumed": self.resumed,
            "duration_s": round(self.duration_s, 3),
        }


@dataclass
class ApplyResult:
    dry_run: bool
    migrations: list[MigrationOutcome]
    changes: list[Change]
    cache_keys: set[str]
    accepted: list[str] = field(default_factory=list)
    took_over: LockInfo | None = None
    cache: CacheResult | None = None

    @property
    def documents(self) -> int:
        return sum(m.documents for m in self.migrations)


def _state_of(states: dict[str, MigrationState], migration: str) -> LedgerState:
    st = states.get(migration)
    return st.state if st is not None else LedgerState.PENDING


def _check_checksums(
    migrations: Sequence[Migration], states: dict[str, MigrationState], accept: dict[str, str]
) -> list[tuple[Migration, str | None]]:
    """Refuse an applied (or half-applied) migration whose file changed, unless accepted."""
    to_accept: list[tuple[Migration, str | None]] = []
    for m in migrations:
        st = states.get(m.id)
        if st is None or st.state not in (LedgerState.APPLIED, LedgerState.INTERRUPTED):
            continue
        recorded = (
            st.accepted_checksum
            if st.state == LedgerState.APPLIED
            else (st.last_run.checksum if st.last_run else None)
        )
        if recorded is None or recorded == m.checksum:
            continue
        if m.id in accept:
            to_accept.append((m, recorded))
            continue
        raise RefusedError(
            f"migration {m.id} was applied from a file with checksum {recorded[:12]}, but "
            f"{m.path.name} now has {m.checksum[:12]}: an applied migration must not change",
            hint=f"restore the file, or accept the change explicitly with "
            f"--accept-changed {m.id} --reason TEXT (recorded in the ledger)",
        )
    return to_accept


def _resolve_accept(migrations: Sequence[Migration], accept: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for ref, reason in accept.items():
        m = next((m for m in migrations if m.matches(ref)), None)
        if m is None:
            raise UsageError(f"--accept-changed {ref}: no such migration")
        if not reason.strip():
            raise UsageError("--accept-changed needs --reason TEXT (recorded in the ledger)")
        out[m.id] = reason
    return out


async def apply(
    store: Store,
    migrations: Sequence[Migration],
    *,
    plan: Plan,
    keys: KeyValues,
    options: RunOptions,
    accept_changed: dict[str, str] | None = None,
    only: Sequence[str] | None = None,
) -> ApplyResult:
    """Apply every pending migration in order (or, resuming, finish an interrupted one)."""
    ledger = Ledger(store.db)
    states = await ledger.states()
    accept = _resolve_accept(migrations, accept_changed or {})
    to_accept = _check_checksums(migrations, states, accept)
    pending = [
        m
        for m in migrations
        if _state_of(states, m.id) in NEEDS_UP and (only is None or m.id in only)
    ]
    result = ApplyResult(options.dry_run, [], [], set(), accepted=[m.id for m, _ in to_accept])
    for m in migrations:
        st = states.get(m.id)
        if st is not None and st.state == LedgerState.APPLIED and (only is None or m.id in only):
            result.migrations.append(MigrationOutcome(m.id, m.description, Outcome.ALREADY_APPLIED))
    if options.dry_run:
        for m in pending:
            ctx = UpContext(
                db=store.db,
                migration=m,
                plan=plan,
                keys=keys,
                dry_run=True,
                progress=options.progress,
                batch_size=options.batch_size,
                stop=options.stop,
            )
            started = time.monotonic()
            await m.up(ctx)
            result.migrations.append(
                MigrationOutcome(
                    m.id,
                    m.description,
                    Outcome.WOULD_APPLY,
                    ctx.stats.documents,
                    ctx.stats.fields,
                    duration_s=time.monotonic() - started,
                )
            )
            result.changes.extend(ctx.changes)
            result.cache_keys.update(ctx.cache_keys)
        return result
    if not pending and not to_accept:
        result.took_over = await _release_stale_lock(store)
        return result
    lock = LeaseLock(store.db, options.command, ttl_s=options.lock_ttl_s)
    async with lock:
        result.took_over = lock.took_over
        for m, previous in to_accept:
            await ledger.accept_changed(m.id, previous, m.checksum, accept[m.id])
        try:
            for m in pending:
                result.migrations.append(
                    await _apply_one(
                        store, ledger, lock, m, plan, keys, options, states.get(m.id), result
                    )
                )
        finally:
            if options.cache is not None:
                from layra_migrate.engine.cache import UP, clear_journaled

                result.cache = await clear_journaled(
                    store.db, options.cache, [m.id for m in pending], UP, result.cache_keys
                )
    return result


async def _release_stale_lock(store: Store) -> LockInfo | None:
    """A run with nothing to do still clears a crashed run's lock (expired, or its holder
    on this host is gone): a run killed after its last write but before its release left
    it, and the operator's re-run must not end with a dead run's lock in ``status``. A
    live lock is never touched. Returns the released lock (reported like a takeover)."""
    from layra_migrate.engine.lock import unlock_if_stale

    return (await unlock_if_stale(store.db)).released


async def _recover(store: Store, ledger: Ledger, migration: str) -> int:
    """Settle the journal entries of runs that died (kill -9, lost server) while running."""
    crashed = await ledger.crashed_runs(migration)
    n = await journal_mod.recover(store.db, crashed)
    if crashed and await ledger.coll.count_documents(
        {"_id": {"$in": crashed}, "direction": Direction.DOWN}, limit=1
    ):
        await journal_mod.settle_restored(store.db, migration)
    await ledger.mark_settled(crashed)
    return n


async def _apply_one(
    store: Store,
    ledger: Ledger,
    lock: LeaseLock,
    m: Migration,
    plan: Plan,
    keys: KeyValues,
    options: RunOptions,
    state: MigrationState | None,
    result: ApplyResult,
) -> MigrationOutcome:
    recovered = await _recover(store, ledger, m.id)
    rec = await ledger.start(m.id, Direction.UP, m.checksum, command=options.command)
    ctx = UpContext(
        db=store.db,
        migration=m,
        plan=plan,
        keys=keys,
        dry_run=False,
        progress=options.progress,
        lock=lock,
        run_id=rec.id,
        run_no=rec.run_no,
        batch_size=options.batch_size,
        stop=options.stop,
        client=store.client,
        transactions=store.transactions,
    )
    started = time.monotonic()
    try:
        await m.up(ctx)
        await ctx.flush()
    except BaseException as exc:
        await ctx.settle_inflight()
        result.cache_keys.update(ctx.cache_keys)
        status = (
            RunStatus.INTERRUPTED
            if isinstance(exc, (Interrupted, KeyboardInterrupt))
            else RunStatus.FAILED
        )
        try:
            await ledger.finish(
                rec, status, ctx.stats.as_dict(), error=f"{exc.__class__.__name__}: {exc}"
            )
        except Exception:  # noqa: BLE001 - the original error matters more
            pass
        raise
    result.cache_keys.update(ctx.cache_keys)
    await ledger.finish(rec, RunStatus.APPLIED, ctx.stats.as_dict())
    return MigrationOutcome(
        m.id,
        m.description,
        Outcome.APPLIED,
        ctx.stats.documents,
        ctx.stats.fields,
        ctx.stats.skipped,
        recovered,
        resumed=bool(
            state and state.state != LedgerState.PENDING and state.state == LedgerState.INTERRUPTED
        ),
        duration_s=time.monotonic() - started,
    )


@dataclass
class RollbackResult:
    dry_run: bool
    force: bool
    migrations: list[MigrationOutcome]
    stats: dict[str, RollbackStats]
    cache: CacheResult | None = None
    took_over: LockInfo | None = None

    @property
    def conflicts(self) -> list[Conflict]:
        return [c for s in self.stats.values() for c in s.conflict_list]

    @property
    def conflict_count(self) -> int:
        return sum(s.conflicts for s in self.stats.values())

    @property
    def restores(self) -> list[Restore]:
        return [r for s in self.stats.values() for r in s.restores]


def _ordered_ids(migrations: Sequence[Migration], states: dict[str, MigrationState]) -> list[str]:
    """Every migration the files or the ledger know, oldest first (a rollback needs only the
    journal, so a migration whose file is gone can still be rolled back)."""
    ids = {m.id for m in migrations} | set(states)
    return sorted(ids)


async def rollback(
    store: Store,
    migrations: Sequence[Migration],
    *,
    to: str | None,
    force: bool,
    options: RunOptions,
    expect: Sequence[str] | None = None,
) -> RollbackResult:
    """Roll back the newest applied migration, or every one from ``to`` on, newest first.

    ``expect``: the migration ids a person confirmed (from a dry run); when the ledger
    changed since and the targets differ, refuse before writing anything."""
    ledger = Ledger(store.db)
    states = await ledger.states()
    ids = _ordered_ids(migrations, states)
    can = [i for i in ids if i in states and states[i].state in CAN_ROLL_BACK]
    if to is not None:
        ref = to.strip()
        start = next(
            (
                i
                for i in ids
                if i == ref or (ref.isdigit() and i[:4].isdigit() and int(i[:4]) == int(ref))
            ),
            None,
        )
        if start is None:
            raise UsageError(f"--to {to}: no such migration")
        targets = [i for i in reversed(can) if i >= start]
    else:
        targets = can[-1:]
    if expect is not None and list(expect) != targets:
        raise RefusedError(
            f"the ledger changed while asking: rollback would now undo "
            f"{', '.join(targets) or 'nothing'}, not the confirmed "
            f"{', '.join(expect) or 'nothing'}; nothing was written",
            hint="run rollback again",
        )
    by_id = {m.id: m for m in migrations}
    result = RollbackResult(options.dry_run, force, [], {})
    if not targets:
        if not options.dry_run:
            result.took_over = await _release_stale_lock(store)
        return result
    cache_keys: set[str] = set()
    if options.dry_run:
        for mid in targets:
            stats = await replay(
                store.db,
                mid,
                force=force,
                dry_run=True,
                lock=None,
                progress=options.progress,
                stop=options.stop,
                batch_size=options.batch_size,
            )
            result.stats[mid] = stats
            result.migrations.append(_outcome(mid, by_id, stats, dry_run=True))
        return result
    lock = LeaseLock(store.db, "rollback", ttl_s=options.lock_ttl_s)
    async with lock:
        result.took_over = lock.took_over
        try:
            for mid in targets:
                await _recover(store, ledger, mid)
                m = by_id.get(mid)
                rec = await ledger.start(
                    mid, Direction.DOWN, m.checksum if m else None, command="rollback", force=force
                )
                started = time.monotonic()
                stats = RollbackStats()
                try:
                    if m is not None and m.down is not None:
                        await _hand_written_down(store, m, lock, options)
                    stats = await replay(
                        store.db,
                        mid,
                        force=force,
                        dry_run=False,
                        lock=lock,
                        progress=options.progress,
                        stop=options.stop,
                        batch_size=options.batch_size,
                    )
                except BaseException as exc:
                    cache_keys.update(stats.cache_keys)
                    status = (
                        RunStatus.INTERRUPTED
                        if isinstance(exc, (Interrupted, KeyboardInterrupt))
                        else RunStatus.FAILED
                    )
                    try:
                        await ledger.finish(
                            rec,
                            status,
                            {},
                            error=f"{exc.__class__.__name__}: {redact.scrub(str(exc))}",
                        )
                    except Exception:  # noqa: BLE001
                        pass
                    raise
                cache_keys.update(stats.cache_keys)
                await ledger.finish(
                    rec,
                    RunStatus.PARTIALLY_ROLLED_BACK if stats.conflicts else RunStatus.ROLLED_BACK,
                    stats.as_dict(),
                )
                result.stats[mid] = stats
                out = _outcome(mid, by_id, stats, dry_run=False)
                out.duration_s = time.monotonic() - started
                result.migrations.append(out)
                if stats.conflicts:
                    break  # older migrations stay applied: a newer one is not fully undone
        finally:
            if options.cache is not None:
                from layra_migrate.engine.cache import DOWN, clear_journaled

                result.cache = await clear_journaled(
                    store.db, options.cache, targets, DOWN, cache_keys
                )
    return result


def _outcome(
    mid: str, by_id: dict[str, Migration], stats: RollbackStats, *, dry_run: bool
) -> MigrationOutcome:
    m = by_id.get(mid)
    if dry_run:
        status = Outcome.WOULD_ROLL_BACK
    else:
        status = Outcome.PARTIALLY_ROLLED_BACK if stats.conflicts else Outcome.ROLLED_BACK
    return MigrationOutcome(
        mid,
        m.description if m else "(file not found)",
        status,
        stats.restored,
        skipped=stats.conflicts,
    )


async def _hand_written_down(
    store: Store, m: Migration, lock: LeaseLock, options: RunOptions
) -> None:
    """A migration's own ``down(ctx)``; its writes are journaled under ``<id>#down``, and
    the journal replay that follows restores whatever it left."""
    import uuid
    from dataclasses import replace

    down_m = replace(m, id=f"{m.id}#down")
    run_id = uuid.uuid4().hex
    ctx = MigrationContext(
        db=store.db,
        migration=down_m,
        dry_run=False,
        progress=options.progress,
        lock=lock,
        run_id=run_id,
        run_no=int(time.time()),
        batch_size=options.batch_size,
        stop=options.stop,
        client=store.client,
        transactions=store.transactions,
    )
    assert m.down is not None
    try:
        await m.down(ctx)
        await ctx.flush()
    except BaseException:
        await ctx.settle_inflight()
        raise


@dataclass
class StatusRow:
    id: str
    description: str
    state: LedgerState
    file_checksum: str | None
    recorded_checksum: str | None
    changed: bool
    file_missing: bool
    last_run: dict[str, Any] | None
    applied: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "state": self.state,
            "file_checksum": self.file_checksum,
            "recorded_checksum": self.recorded_checksum,
            "file_changed": self.changed,
            "file_missing": self.file_missing,
            "applied": self.applied,
            "last_run": self.last_run,
        }


@dataclass
class StatusReport:
    database: str
    migrations: list[StatusRow]
    lock: LockInfo | None
    journal: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "migrations": [r.as_dict() for r in self.migrations],
            "lock": self.lock.as_dict() if self.lock else None,
            "journal": self.journal,
        }


async def status(
    db: AsyncDatabase[dict[str, Any]], migrations: Sequence[Migration]
) -> StatusReport:
    """Read-only: the ledger, the lock and journal counts."""
    from layra_migrate import toolstate

    states = await Ledger(db).states()
    rows: list[StatusRow] = []
    by_id = {m.id: m for m in migrations}
    for mid in _ordered_ids(migrations, states):
        m = by_id.get(mid)
        st = states.get(mid)
        state = st.state if st else LedgerState.PENDING
        recorded = st.accepted_checksum if st else None
        if st and state == LedgerState.INTERRUPTED and st.last_run:
            recorded = st.last_run.checksum
        changed = bool(m and recorded and recorded != m.checksum)
        rows.append(
            StatusRow(
                mid,
                m.description if m else "(file not found)",
                state,
                m.checksum if m else None,
                recorded,
                changed,
                m is None,
                st.last_run.as_dict() if st and st.last_run else None,
                st.last_up.as_dict() if st and st.last_up else None,
            )
        )
    counts: dict[str, int] = {}
    if toolstate.JOURNAL in await db.list_collection_names():
        cursor = await db[toolstate.JOURNAL].aggregate(
            [{"$group": {"_id": "$state", "n": {"$sum": 1}}}]
        )
        counts = {str(r["_id"]): int(r["n"]) async for r in cursor}
    lock = await read_lock(db)
    if lock is not None and (gone := lock.holder_gone()) is not None:
        from dataclasses import replace

        lock = replace(lock, stale_reason=gone)  # the next run takes it over at once
    return StatusReport(db.name, rows, lock, counts)
