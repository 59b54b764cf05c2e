"""``history``: every recorded run, newest first (like ``alembic history`` / ``flyway info``).

Read from the tool's own records (``toolstate``): the ledger (one record per migration
run of ``rewrite`` and ``rollback``, and one per ``--accept-changed``) and the
decommission collection (one record per ``decommission`` / ``restore``). Records
written by older versions lack some fields (``command``, ``force``, ``by`` on
decommission runs, a time zone): they are read with what they have, missing values
as ``None``, and every time is given in UTC with its zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from layra_migrate import redact, toolstate

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

SCHEMA = "layra-migrate/history/v1"

# The ledger's (direction, status) as the outcome a person reads.
_OUTCOMES = {
    "applied": "applied",
    "interrupted": "interrupted",
    "failed": "failed",
    "running": "running",  # never finished: crashed (kill -9, lost server) or still running
    "rolled_back": "rolled_back",
    "partially_rolled_back": "partially_rolled_back",
    "accepted": "accepted",
}


def utc(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime (naive values are UTC: PyMongo's default;
    ISO strings are what decommission records hold)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class HistoryEntry:
    """One run. ``command`` is what the operator ran (rewrite, rollback, accept_changed,
    decommission, restore); ``target`` the migration id or the Docker project."""

    command: str
    target: str
    outcome: str
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    by: str | None
    forced: bool | None = None
    counts: dict[str, int] = field(default_factory=dict)
    reason: str | None = None
    error: str | None = None
    run: str | None = None
    source: str = toolstate.LEDGER

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "command": self.command,
            "target": self.target,
            "outcome": self.outcome,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_s": self.duration_s,
            "by": self.by,
            "forced": self.forced,
            "counts": self.counts,
            "reason": self.reason,
            "error": self.error,
            "source": self.source,
        }


@dataclass
class History:
    database: str
    entries: list[HistoryEntry]

    def as_dict(self) -> dict[str, Any]:
        return {"database": self.database, "runs": [e.as_dict() for e in self.entries]}


def _duration(
    doc: dict[str, Any], started: datetime | None, finished: datetime | None
) -> float | None:
    value = doc.get("duration_s")
    if isinstance(value, (int, float)):
        return round(float(value), 3)
    if started and finished:
        return round((finished - started).total_seconds(), 3)
    return None


def _int_counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, (int, float))}


def from_ledger(doc: dict[str, Any]) -> HistoryEntry:
    direction = str(doc.get("direction") or "")
    status = str(doc.get("status") or "unknown")
    counts = _int_counts(doc.get("counts"))
    if direction == "accept_changed":
        command = "accept_changed"
    elif direction == "down":
        command = "rollback"
    else:
        command = str(doc.get("command") or "rewrite")
    forced: bool | None = None
    if direction == "down":
        # Older records lack ``force``: a forced restore shows in the counts.
        flag = doc.get("force")
        forced = bool(flag) if isinstance(flag, bool) else (True if counts.get("forced") else None)
    started = utc(doc.get("started_at"))
    finished = utc(doc.get("finished_at"))
    if direction == "accept_changed" and finished is None:
        finished = started  # an instant: the record is the whole run
    return HistoryEntry(
        command=command,
        target=str(doc.get("migration") or "?"),
        outcome=_OUTCOMES.get(status, status),
        started_at=started,
        finished_at=finished,
        duration_s=_duration(doc, started, finished),
        by=doc.get("by"),
        forced=forced,
        counts=counts,
        reason=redact.scrub(str(doc["reason"])) if doc.get("reason") else None,
        error=redact.scrub(str(doc["error"])) if doc.get("error") else None,
        run=str(doc.get("_id")) if doc.get("_id") is not None else None,
        source=toolstate.LEDGER,
    )


def from_decommission(doc: dict[str, Any]) -> HistoryEntry:
    kind = str(doc.get("kind") or "decommission")
    code = doc.get("exit_code")
    if doc.get("rolled_back"):
        outcome = "rolled_back"
    elif code == 0:
        outcome = "done"
    else:
        outcome = "failed" if code is not None else "unknown"
    containers = doc.get("containers") or []
    started = utc(doc.get("started_at"))
    finished = utc(doc.get("finished_at"))
    forced = doc.get("forced")
    return HistoryEntry(
        command=kind,
        target=str(doc.get("project") or "?"),
        outcome=outcome,
        started_at=started,
        finished_at=finished,
        duration_s=_duration(doc, started, finished),
        by=doc.get("by"),
        forced=bool(forced) if isinstance(forced, bool) else None,
        counts={"containers": len(containers)} if isinstance(containers, list) else {},
        reason=redact.scrub(str(doc["reason"])) if doc.get("reason") else None,
        error=redact.scrub(str(doc["error"])) if doc.get("error") else None,
        run=str(doc.get("_id")) if doc.get("_id") is not None else None,
        source=toolstate.DECOMMISSION_RUNS,
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def read_history(db: AsyncDatabase[dict[str, Any]], *, limit: int | None = None) -> History:
    """Every recorded run, newest first. Read-only; a database the tool never wrote to
    has an empty history."""
    names = set(await db.list_collection_names())
    entries: list[HistoryEntry] = []
    if toolstate.LEDGER in names:
        async for doc in db[toolstate.LEDGER].find({}):
            entries.append(from_ledger(doc))
    if toolstate.DECOMMISSION_RUNS in names:
        async for doc in db[toolstate.DECOMMISSION_RUNS].find({}):
            entries.append(from_decommission(doc))
    entries.sort(key=lambda e: (e.started_at or _EPOCH, e.finished_at or _EPOCH), reverse=True)
    if limit is not None:
        entries = entries[:limit]
    return History(db.name, entries)
