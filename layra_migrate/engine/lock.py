"""The lease lock: at most one rewrite/rollback at a time, per database.

Acquired by an atomic unique insert on a fixed ``_id``; it carries owner,
user@host, pid, command and an expiry. A heartbeat task extends the expiry
while the run lives; every batch write first checks the lock is still ours
and unexpired. A crashed holder's lease simply expires: a later run takes over
an expired lock (atomically, only if it is still expired), and
``unlock --if-stale`` deletes an expired one. A live lock is never taken.

The lock also records where its holder runs: host name, boot id, PID namespace,
pid and the process's start time. When a run finds the lock held by a process on
this same host (same name, boot and PID namespace) that is gone (pid not running,
or running with a different start time: the pid was reused), the lock is stale at
once and is taken over atomically (only if it still belongs to that holder), so a
re-run right after ``kill -9`` does not wait for the lease. A holder on another
host (or one whose liveness cannot be read) keeps the lease rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import socket
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from layra_migrate import toolstate
from layra_migrate.errors import RefusedError

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

LOCK_ID = "layra-migrate"
DEFAULT_TTL_S = 60.0
TTL_ENV = "LAYRA_MIGRATE_LOCK_TTL"


def now() -> datetime:
    # Millisecond precision, naive UTC: what the server stores and returns.
    t = datetime.now(UTC).replace(tzinfo=None)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (Linux ``/proc/PID/stat`` field
    22), or None when the process does not exist or /proc cannot tell."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    try:
        # the command name (field 2) may hold spaces and parentheses: split after the last ')'
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class HostIdentity:
    """What makes two lock holders "the same host" for the pid check."""

    host: str
    boot_id: str | None
    pid_ns: str | None

    @classmethod
    def current(cls) -> HostIdentity:
        try:
            ns: str | None = os.readlink("/proc/self/ns/pid")
        except OSError:
            ns = None
        return cls(socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), ns)


def whoami() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class LockInfo:
    owner: str
    holder: str  # user@host
    pid: int
    command: str
    acquired_at: datetime
    expires_at: datetime
    host: str | None = None
    boot_id: str | None = None
    pid_ns: str | None = None
    pid_start: int | None = None
    stale_reason: str | None = None  # set when taken over because the holder is gone

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> LockInfo:
        start = doc.get("pid_start")
        return cls(
            str(doc.get("owner")),
            str(doc.get("holder")),
            int(doc.get("pid") or 0),
            str(doc.get("command")),
            doc["acquired_at"],
            doc["expires_at"],
            doc.get("host"),
            doc.get("boot_id"),
            doc.get("pid_ns"),
            int(start) if start is not None else None,
        )

    def holder_gone(self, here: HostIdentity | None = None) -> str | None:
        """Why the holding process is certainly gone (it ran on this host), else None."""
        here = here or HostIdentity.current()
        if (
            not self.host
            or self.host != here.host
            or self.boot_id is None
            or self.boot_id != here.boot_id
            or self.pid_ns is None
            or self.pid_ns != here.pid_ns
            or self.pid <= 0
            or self.pid_start is None
        ):
            return None  # another host, or liveness unknown: the lease rule applies
        if self.pid == os.getpid():
            return None
        start = process_start(self.pid)
        if start is None:
            return f"pid {self.pid} is not running on this host"
        if start != self.pid_start:
            return (
                f"pid {self.pid} now belongs to another process (started at tick {start}, "
                f"the holder at {self.pid_start})"
            )
        return None

    def expired(self, at: datetime | None = None) -> bool:
        return self.expires_at <= (at or now())

    def age_s(self) -> float:
        return max(0.0, (now() - self.acquired_at).total_seconds())

    def describe(self) -> str:
        state = "expired" if self.expired() else "live"
        if self.stale_reason:
            state = f"holder gone: {self.stale_reason}"
        return (
            f"{self.holder} pid {self.pid} ({self.command}, held {self.age_s():.0f}s, "
            f"{state}, expires {self.expires_at:%Y-%m-%d %H:%M:%S} UTC)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "pid": self.pid,
            "command": self.command,
            "acquired_at": self.acquired_at,
            "expires_at": self.expires_at,
            "age_s": round(self.age_s(), 1),
            "expired": self.expired(),
            "host": self.host,
            "pid_start": self.pid_start,
            "holder_gone": self.stale_reason,
        }


def ttl_from_env(value: str | None) -> float:
    try:
        ttl = float(value) if value else DEFAULT_TTL_S
    except ValueError:
        ttl = DEFAULT_TTL_S
    return max(ttl, 0.5)


async def read_lock(db: AsyncDatabase[dict[str, Any]]) -> LockInfo | None:
    doc = await db[toolstate.LOCK].find_one({"_id": LOCK_ID})
    return LockInfo.from_doc(doc) if doc else None


class LeaseLock:
    """Use as ``async with LeaseLock(db, "rewrite") as lock: ... await lock.ensure()``."""

    def __init__(
        self, db: AsyncDatabase[dict[str, Any]], command: str, *, ttl_s: float = DEFAULT_TTL_S
    ) -> None:
        self.db = db
        self.coll = db[toolstate.LOCK]
        self.command = command
        self.ttl = timedelta(seconds=ttl_s)
        self.owner = uuid.uuid4().hex
        self.took_over: LockInfo | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = False
        self._stopping = False

    def _doc(self) -> dict[str, Any]:
        t = now()
        here = HostIdentity.current()
        return {
            "_id": LOCK_ID,
            "owner": self.owner,
            "holder": whoami(),
            "pid": os.getpid(),
            "host": here.host,
            "boot_id": here.boot_id,
            "pid_ns": here.pid_ns,
            "pid_start": process_start(os.getpid()),
            "command": self.command,
            "acquired_at": t,
            "heartbeat_at": t,
            "expires_at": t + self.ttl,
        }

    async def acquire(self) -> None:
        from pymongo.errors import DuplicateKeyError

        try:
            await self.coll.insert_one(self._doc())
        except DuplicateKeyError:
            held = await read_lock(self.db)
            if held is None:  # released between our insert and our read: try once more
                try:
                    await self.coll.insert_one(self._doc())
                except DuplicateKeyError:
                    raise self._refusal(await read_lock(self.db)) from None
            elif held.expired():
                replaced = await self.coll.find_one_and_replace(
                    {"_id": LOCK_ID, "owner": held.owner, "expires_at": {"$lte": now()}},
                    self._doc(),
                )
                if replaced is None:
                    raise self._refusal(await read_lock(self.db)) from None
                self.took_over = held
            elif (gone := held.holder_gone()) is not None:
                # Same host, holder dead: stale now. Atomic: only while it is still that
                # holder's lock (its owner id is unique per run).
                replaced = await self.coll.find_one_and_replace(
                    {"_id": LOCK_ID, "owner": held.owner}, self._doc()
                )
                if replaced is None:
                    raise self._refusal(await read_lock(self.db)) from None
                self.took_over = replace(held, stale_reason=gone)
            else:
                raise self._refusal(held) from None
        self._task = asyncio.create_task(self._heartbeat())

    @staticmethod
    def _refusal(held: LockInfo | None) -> RefusedError:
        shown = held.describe() if held else "another run"
        return RefusedError(
            f"another migration run holds the lock: {shown}",
            hint="wait for it to finish; a crashed run's lock expires, then "
            "`layra-migrate unlock --if-stale` releases it",
        )

    async def _heartbeat(self) -> None:
        interval = max(self.ttl.total_seconds() / 4, 0.1)
        # The flag, not only the cancellation, ends the loop: a driver call that is
        # cancelled while the server is gone can surface as an ordinary error instead of
        # CancelledError, which the `except Exception` below would swallow forever.
        while not self._stopping:
            await asyncio.sleep(interval)
            try:
                t = now()
                res = await self.coll.update_one(
                    {"_id": LOCK_ID, "owner": self.owner},
                    {"$set": {"heartbeat_at": t, "expires_at": t + self.ttl}},
                )
                if res.matched_count == 0:
                    self._lost = True
                    return
            except Exception:  # noqa: BLE001 - ensure() reports it at the next batch
                continue

    async def ensure(self) -> None:
        """Raise unless we still hold an unexpired lock. Called before every batch write."""
        doc = await self.coll.find_one({"_id": LOCK_ID, "owner": self.owner})
        if self._lost or doc is None or doc["expires_at"] <= now():
            raise RefusedError(
                "lost the migration lock (the lease expired or was released); "
                "stopped before the next write",
                hint="re-run to resume; the journal makes the run resumable",
            )

    async def release(self) -> None:
        if self._task is not None:
            self._stopping = True
            self._task.cancel()
            # Bounded: releasing must never hang on a heartbeat stuck in a dead server.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait({self._task}, timeout=5.0)
            self._task = None
        with contextlib.suppress(Exception):
            await self.coll.delete_one({"_id": LOCK_ID, "owner": self.owner})

    async def __aenter__(self) -> LeaseLock:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


@dataclass(frozen=True)
class UnlockResult:
    released: LockInfo | None
    held: LockInfo | None  # a live lock that was left alone

    def as_dict(self) -> dict[str, Any]:
        return {
            "released": self.released.as_dict() if self.released else None,
            "live_lock": self.held.as_dict() if self.held else None,
        }


async def unlock_if_stale(db: AsyncDatabase[dict[str, Any]]) -> UnlockResult:
    """Delete the lock only if it is expired; a live lock is never touched."""
    held = await read_lock(db)
    if held is None:
        return UnlockResult(None, None)
    if not held.expired():
        gone = held.holder_gone()
        if gone is None:
            return UnlockResult(None, held)
        res = await db[toolstate.LOCK].delete_one({"_id": LOCK_ID, "owner": held.owner})
        if res.deleted_count:
            return UnlockResult(replace(held, stale_reason=gone), None)
        return UnlockResult(None, await read_lock(db))
    res = await db[toolstate.LOCK].delete_one(
        {"_id": LOCK_ID, "owner": held.owner, "expires_at": {"$lte": now()}}
    )
    if res.deleted_count:
        return UnlockResult(held, None)
    return UnlockResult(None, await read_lock(db))
