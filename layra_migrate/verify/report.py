"""The report of a probe run, and its record in ``layra_migrate_verify`` (never keys)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from layra_migrate import redact
from layra_migrate.proxy import normalise_url
from layra_migrate.toolstate import VERIFY_RUNS
from layra_migrate.verify.outcomes import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT_S,
    OK,
    SCHEMA,
    SKIPPED,
)
from layra_migrate.verify.probing import ProbeResult
from layra_migrate.verify.targets import shape_label

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase


@dataclass
class VerifyReport:
    source: str  # "plan" | "database"
    database: str
    results: list[ProbeResult]
    not_migrated: int = 0
    plan_path: str | None = None
    only: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    wall_ms: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S
    concurrency: int = DEFAULT_CONCURRENCY
    recorded: bool = False
    record_error: str | None = None

    @property
    def ok(self) -> int:
        return sum(1 for r in self.results if r.status == OK)

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.results if r.status == SKIPPED)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if r.status not in (OK, SKIPPED))

    def passed(self, allow_skipped: bool = False) -> bool:
        return self.failed == 0 and (allow_skipped or self.skipped == 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "source": self.source,
            "database": self.database,
            "plan": self.plan_path,
            "only": self.only,
            "targets": [r.as_dict() for r in self.results],
            "ok": self.ok,
            "failed": self.failed,
            "skipped": self.skipped,
            "not_migrated": self.not_migrated,
            "timeout_s": self.timeout_s,
            "concurrency": self.concurrency,
            "wall_ms": self.wall_ms,
            "recorded": self.recorded,
        }

    def record(self, allow_skipped: bool) -> dict[str, Any]:
        """The VERIFY_RUNS document: per-target outcome, URLs and models, never keys."""
        return {
            "source": self.source,
            "database": self.database,
            "plan": self.plan_path,
            "only": self.only,
            "at": self.started_at,
            "wall_ms": self.wall_ms,
            "passed": self.passed(allow_skipped),
            "allow_skipped": allow_skipped,
            "ok": self.ok,
            "failed": self.failed,
            "skipped": self.skipped,
            "not_migrated": self.not_migrated,
            "targets": [
                {
                    "provider": r.target.provider,
                    "base_url": r.target.base_url,
                    "normalised_url": normalise_url(r.target.base_url),
                    "model": r.target.model,
                    "references": r.target.references,
                    "status": r.status,
                    "detail": redact.scrub(r.detail),
                    "latency_ms": r.latency_ms,
                    "api_key_env": r.target.api_key_env,
                    "shape": shape_label(r.target),
                    "params": r.request or None,
                }
                for r in self.results
            ],
        }


async def record_run(
    db: AsyncDatabase[dict[str, Any]], report: VerifyReport, allow_skipped: bool
) -> None:
    """Insert the run into ``layra_migrate_verify``.

    A server that refuses the write (a read-only user) does not fail the
    verification: the report carries ``record_error`` and the CLI warns.
    """
    report.record_error = await insert_record(db, report.record(allow_skipped), report.started_at)
    report.recorded = report.record_error is None


async def insert_record(
    db: AsyncDatabase[dict[str, Any]], record: dict[str, Any], started_at: datetime
) -> str | None:
    """Insert one scrubbed run document; the reason it was refused, or ``None``."""
    from pymongo.errors import OperationFailure

    doc = redact.scrub_obj(record)
    doc["at"] = doc["started_at"] = started_at.replace(tzinfo=None)
    doc["finished_at"] = datetime.now(UTC).replace(tzinfo=None)
    try:
        await db[VERIFY_RUNS].insert_one(doc)
    except OperationFailure as exc:
        return redact.scrub(
            f"run not recorded in {VERIFY_RUNS}: {exc.__class__.__name__} {exc.code}"
        )
    return None


async def last_verify_run(
    db: AsyncDatabase[dict[str, Any]], source: str | None = None
) -> dict[str, Any] | None:
    """The most recent recorded probe run (optionally of one source), for ``decommission``.

    Fields: ``source``, ``at``/``started_at``/``finished_at`` (UTC), ``passed``,
    ``ok``/``failed``/``skipped``, ``not_migrated``, ``targets`` [{provider, base_url,
    normalised_url, model, references, status, detail, latency_ms, api_key_env, shape,
    params}]. Never keys. ``verify --against-proxy`` records (``mode: "against_proxy"``)
    are not probe runs: :func:`~layra_migrate.verify.against_proxy.last_comparison`.
    """
    query: dict[str, Any] = {"mode": {"$exists": False}}
    if source is not None:
        query["source"] = source
    return await db[VERIFY_RUNS].find_one(query, sort=[("finished_at", -1), ("_id", -1)])
