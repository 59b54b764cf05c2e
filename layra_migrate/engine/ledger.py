"""The ledger: one record per migration run, and per accepted file change.

A migration's state is read from its newest ``up``/``down`` run. The file
checksum recorded by the last successful ``up`` (or by the last
``--accept-changed``) is the one an applied migration's file must still have.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from layra_migrate import redact, toolstate
from layra_migrate.engine.lock import now, whoami

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase


class LedgerState(StrEnum):
    """A migration's state, read from its newest ``up``/``down`` run."""

    PENDING = "pending"
    APPLIED = "applied"
    INTERRUPTED = "interrupted"  # an up run stopped (Ctrl-C, crash, error): rewrite resumes it
    ROLLED_BACK = "rolled_back"
    PARTIALLY_ROLLED_BACK = "partially_rolled_back"
    ROLLBACK_INTERRUPTED = "rollback_interrupted"


class RunStatus(StrEnum):
    """A run record's ``status``."""

    RUNNING = "running"  # never finished while this stays: crashed (kill -9, lost server)
    APPLIED = "applied"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    PARTIALLY_ROLLED_BACK = "partially_rolled_back"
    ACCEPTED = "accepted"  # an --accept-changed record


class Direction(StrEnum):
    """A run record's ``direction``."""

    UP = "up"
    DOWN = "down"
    ACCEPT_CHANGED = "accept_changed"


NEEDS_UP = frozenset(
    {
        LedgerState.PENDING,
        LedgerState.INTERRUPTED,
        LedgerState.ROLLED_BACK,
        LedgerState.PARTIALLY_ROLLED_BACK,
        LedgerState.ROLLBACK_INTERRUPTED,
    }
)
CAN_ROLL_BACK = frozenset(
    {
        LedgerState.APPLIED,
        LedgerState.INTERRUPTED,
        LedgerState.PARTIALLY_ROLLED_BACK,
        LedgerState.ROLLBACK_INTERRUPTED,
    }
)


@dataclass
class RunRecord:
    id: str
    migration: str
    direction: str  # a Direction
    status: str  # a RunStatus
    run_no: int
    checksum: str | None
    started_at: datetime
    by: str
    finished_at: datetime | None = None
    duration_s: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    reason: str | None = None
    previous_checksum: str | None = None

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> RunRecord:
        return cls(
            str(d["_id"]),
            d["migration"],
            d["direction"],
            d["status"],
            int(d.get("run_no") or 0),
            d.get("checksum"),
            d["started_at"],
            d.get("by", "?"),
            d.get("finished_at"),
            d.get("duration_s"),
            dict(d.get("counts") or {}),
            d.get("error"),
            d.get("reason"),
            d.get("previous_checksum"),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.id,
            "migration": self.migration,
            "direction": self.direction,
            "status": self.status,
            "run_no": self.run_no,
            "checksum": self.checksum,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "by": self.by,
            "counts": self.counts,
            "error": self.error,
            "reason": self.reason,
        }


@dataclass
class MigrationState:
    migration: str
    state: LedgerState
    last_up: RunRecord | None
    last_run: RunRecord | None
    accepted_checksum: str | None  # the checksum the file must have while applied

    @property
    def checksum(self) -> str | None:
        return self.accepted_checksum


class Ledger:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.coll = db[toolstate.LEDGER]

    async def runs(self, migration: str | None = None) -> list[RunRecord]:
        flt = {"migration": migration} if migration else {}
        cursor = self.coll.find(flt).sort([("started_at", 1), ("run_no", 1)])
        return [RunRecord.from_doc(d) async for d in cursor]

    async def states(self) -> dict[str, MigrationState]:
        out: dict[str, MigrationState] = {}
        for r in await self.runs():
            st = out.setdefault(
                r.migration, MigrationState(r.migration, LedgerState.PENDING, None, None, None)
            )
            if r.direction == Direction.ACCEPT_CHANGED:
                st.accepted_checksum = r.checksum
                continue
            st.last_run = r
            if r.direction == Direction.UP:
                if r.status == RunStatus.APPLIED:
                    st.state = LedgerState.APPLIED
                    st.last_up = r
                    st.accepted_checksum = r.checksum
                elif r.status in (RunStatus.RUNNING, RunStatus.INTERRUPTED, RunStatus.FAILED):
                    st.state = LedgerState.INTERRUPTED
            elif r.direction == Direction.DOWN:
                if r.status == RunStatus.ROLLED_BACK:
                    st.state = LedgerState.ROLLED_BACK
                    st.accepted_checksum = None
                elif r.status == RunStatus.PARTIALLY_ROLLED_BACK:
                    st.state = LedgerState.PARTIALLY_ROLLED_BACK
                else:
                    st.state = LedgerState.ROLLBACK_INTERRUPTED
        return out

    async def next_run_no(self, migration: str) -> int:
        last = await self.coll.find_one({"migration": migration}, sort=[("run_no", -1)])
        return int(last.get("run_no") or 0) + 1 if last else 1

    async def start(
        self,
        migration: str,
        direction: Direction,
        checksum: str | None,
        *,
        command: str | None = None,
        force: bool | None = None,
    ) -> RunRecord:
        """Record a run as it starts. ``command`` (rewrite, rollback, check) and ``force``
        (rollback --force) are kept for ``history``; records written before they existed
        lack them."""
        rec = RunRecord(
            uuid.uuid4().hex,
            migration,
            direction,
            RunStatus.RUNNING,
            await self.next_run_no(migration),
            checksum,
            now(),
            whoami(),
        )
        doc = rec.as_dict()
        doc["_id"] = doc.pop("run")
        doc["pid"] = os.getpid()
        if command is not None:
            doc["command"] = command
        if force is not None:
            doc["force"] = force
        await self.coll.insert_one(doc)
        return rec

    async def finish(
        self, rec: RunRecord, status: RunStatus, counts: dict[str, int], error: str | None = None
    ) -> None:
        rec.status = status
        rec.finished_at = now()
        rec.duration_s = round((rec.finished_at - rec.started_at).total_seconds(), 3)
        rec.counts = counts
        rec.error = redact.scrub(error) if error else None
        await self.coll.update_one(
            {"_id": rec.id},
            {
                "$set": {
                    "status": status,
                    "finished_at": rec.finished_at,
                    "duration_s": rec.duration_s,
                    "counts": counts,
                    "error": rec.error,
                }
            },
        )

    async def crashed_runs(self, migration: str) -> list[str]:
        """Runs of this migration (and its hand-written down) that never finished cleanly."""
        flt = {
            "migration": {"$in": [migration, f"{migration}#down"]},
            "status": {"$in": [RunStatus.RUNNING, RunStatus.FAILED]},
            "settled": {"$ne": True},
        }
        return [str(d["_id"]) async for d in self.coll.find(flt, {"_id": 1})]

    async def mark_settled(self, runs: list[str]) -> None:
        if runs:
            await self.coll.update_many({"_id": {"$in": runs}}, {"$set": {"settled": True}})

    async def accept_changed(
        self, migration: str, previous: str | None, checksum: str, reason: str
    ) -> RunRecord:
        rec = RunRecord(
            uuid.uuid4().hex,
            migration,
            Direction.ACCEPT_CHANGED,
            RunStatus.ACCEPTED,
            await self.next_run_no(migration),
            checksum,
            now(),
            whoami(),
            reason=redact.scrub(reason),
            previous_checksum=previous,
        )
        doc = rec.as_dict()
        doc["_id"] = doc.pop("run")
        doc["previous_checksum"] = previous
        doc["command"] = "rewrite"
        doc["finished_at"] = rec.started_at
        doc["duration_s"] = 0.0
        await self.coll.insert_one(doc)
        return rec
