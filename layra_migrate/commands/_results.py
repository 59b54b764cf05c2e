"""The result objects the commands return: each owns its JSON form, schema id and exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from layra_migrate.decommission.models import RunResult
from layra_migrate.errors import (
    EXIT_CONFLICTS,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_VERIFY_FAILED,
    LayraMigrateError,
)

if TYPE_CHECKING:
    from layra_migrate.audit import AuditReport
    from layra_migrate.dryrun import DryRunPlan
    from layra_migrate.engine.check import CheckResult as CheckRun
    from layra_migrate.engine.lock import UnlockResult as UnlockRun
    from layra_migrate.engine.preflight import Preflight
    from layra_migrate.engine.runner import ApplyResult, StatusReport
    from layra_migrate.engine.runner import RollbackResult as RollbackRun
    from layra_migrate.history import History
    from layra_migrate.litellm.proxy_db import ProxyDbModels
    from layra_migrate.verify import VerifyReport
    from layra_migrate.verify.against_proxy import ProxyComparisonReport


DecommissionResult = RunResult
"""``decommission`` and ``restore`` return the decommission core's own result object
(``schema`` is ``layra-migrate/decommission/v1`` or ``layra-migrate/restore/v1``)."""

DEFAULT_PLAN = Path("plan.yaml")
"""The plan ``rewrite`` and ``check`` read when none is given (``./plan.yaml``)."""


def schema_id(command: str) -> str:
    """The JSON schema id of a command's output (``layra-migrate/<command>/v1``)."""
    return f"layra-migrate/{command}/v1"


# ---------------------------------------------------------------------------------------
# Result objects


@dataclass
class AuditResult:
    """``audit``: the report, and where the plan was written (if asked)."""

    SCHEMA: ClassVar[str] = schema_id("audit")
    report: AuditReport
    plan_path: Path | None = None
    exit_code: int = EXIT_OK
    proxy_db: ProxyDbModels | None = None  # models stored in the proxy's database

    def as_json(self) -> dict[str, Any]:
        data = self.report.as_json()
        data["plan"] = str(self.plan_path) if self.plan_path else None
        data["proxy_db"] = self.proxy_db.as_dict() if self.proxy_db else None
        return data


@dataclass
class RewriteResult:
    """``rewrite``: the preflight and what the run applied (or would, with dry_run)."""

    SCHEMA: ClassVar[str] = schema_id("rewrite")
    database: str | None
    dry_run: bool
    plan_path: Path
    preflight: Preflight
    applied: ApplyResult
    dry_plan: DryRunPlan | None = None  # the dry run as a plan (summary, blockers, diff)
    summary_only: bool = False

    @property
    def cache_failed(self) -> list[str]:
        """Redis keys that could not be deleted after the MongoDB write."""
        cache = self.applied.cache
        return list(cache.failed) if cache is not None else []

    @property
    def exit_code(self) -> int:
        if self.dry_plan is not None:  # what the real run would do: 0, 4 (or 3)
            return self.dry_plan.exit_code
        return EXIT_UNREACHABLE if self.cache_failed else EXIT_OK

    def as_json(self) -> dict[str, Any]:
        r = self.applied
        plan: dict[str, Any] = {}
        if self.dry_plan is not None:
            head = self.dry_plan.as_json(full=False)
            plan = {k: head[k] for k in ("summary", "blockers", "duplicates")}
        return {
            "schema": self.SCHEMA,
            "database": self.database,
            "dry_run": self.dry_run,
            "plan": str(self.plan_path),
            "preflight": self.preflight.as_dict(),
            **plan,
            "skipped_unresolved": [b.model_name for b in self.preflight.skipped],
            "skipped": [b.as_dict() for b in self.preflight.skipped],
            "migrations": [m.as_dict() for m in r.migrations],
            "documents": r.documents,
            "changes": (
                [c.as_dict() for c in r.changes] if self.dry_run and not self.summary_only else None
            ),
            "accepted_changes": r.accepted,
            "lock_taken_over": r.took_over.as_dict() if r.took_over else None,
            "redis": (
                r.cache.as_dict()
                if r.cache
                else {
                    "keys": len(r.cache_keys),
                    "deleted": 0,
                    "not_cached": 0,
                    "failed": [],
                    "redis_url": None,
                    "error": None,
                }
            )
            | ({"check": self.dry_plan.redis.get("check")} if self.dry_plan else {}),
            "exit_code": self.exit_code,
        }


@dataclass
class RollbackResult:
    """``rollback``: what was restored, and the conflicts left alone."""

    SCHEMA: ClassVar[str] = schema_id("rollback")
    database: str | None
    dry_run: bool
    force: bool
    run: RollbackRun
    redis_problem: LayraMigrateError | None = None  # dry run: what the real run would hit

    @property
    def cache_failed(self) -> list[str]:
        cache = self.run.cache
        return list(cache.failed) if cache is not None else []

    @property
    def cache_keys(self) -> int:
        return sum(len(s.cache_keys) for s in self.run.stats.values())

    @property
    def exit_code(self) -> int:
        if self.run.conflict_count:
            return EXIT_CONFLICTS
        if self.redis_problem is not None:
            return self.redis_problem.exit_code
        return EXIT_UNREACHABLE if self.cache_failed else EXIT_OK

    def as_json(self) -> dict[str, Any]:
        r = self.run
        return {
            "schema": self.SCHEMA,
            "database": self.database,
            "dry_run": self.dry_run,
            "force": self.force,
            "migrations": [m.as_dict() | {"counts": r.stats[m.id].as_dict()} for m in r.migrations],
            "restored": sum(s.restored for s in r.stats.values()),
            "conflict_count": r.conflict_count,
            "conflicts": [c.as_dict() for c in r.conflicts],
            "restores": [x.as_dict() for x in r.restores] if self.dry_run else None,
            "lock_taken_over": r.took_over.as_dict() if r.took_over else None,
            "redis": r.cache.as_dict() if r.cache else None,
            "redis_problem": self.redis_problem.message if self.redis_problem else None,
            "exit_code": self.exit_code,
        }


@dataclass
class StatusResult:
    """``status``: every migration's state and the lock."""

    SCHEMA: ClassVar[str] = schema_id("status")
    report: StatusReport
    exit_code: int = EXIT_OK

    @property
    def pending(self) -> list[str]:
        """Migrations not applied (pending, interrupted, partially rolled back)."""
        from layra_migrate.engine.ledger import LedgerState

        return [r.id for r in self.report.migrations if r.state != LedgerState.APPLIED]

    def as_json(self) -> dict[str, Any]:
        return {"schema": self.SCHEMA, **self.report.as_dict()}


@dataclass
class CheckResult:
    """``check``: the reversibility proof on a scratch copy."""

    SCHEMA: ClassVar[str] = schema_id("check")
    database: str | None
    preflight: Preflight
    run: CheckRun

    @property
    def ok(self) -> bool:
        return self.run.ok

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.run.ok else EXIT_VERIFY_FAILED

    def as_json(self) -> dict[str, Any]:
        r = self.run
        return {
            "schema": self.SCHEMA,
            "database": self.database,
            "scratch_db": r.scratch_db,
            "ok": r.ok,
            "copied": r.copied,
            "original_hash": r.original,
            "steps": [s.as_dict() for s in r.steps],
            "first_difference": r.first_difference,
            "blocking": [b.as_dict() for b in self.preflight.blocking],
            "placeholder_keys": self.preflight.placeholder_keys,
            "exit_code": self.exit_code,
        }


class _ProbeReport(Protocol):
    def passed(self, allow_skipped: bool) -> bool: ...

    def as_json(self) -> dict[str, Any]: ...


@dataclass
class _ProbeRunResult:
    """A verify run's result: passed (exit 0) or not (exit 5), as its report says."""

    SCHEMA: ClassVar[str] = schema_id("verify")
    report: _ProbeReport
    allow_skipped: bool = False

    @property
    def passed(self) -> bool:
        return self.report.passed(self.allow_skipped)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.passed else EXIT_VERIFY_FAILED

    def as_json(self) -> dict[str, Any]:
        return self.report.as_json()


@dataclass
class VerifyResult(_ProbeRunResult):
    """``verify``: one probe per target; passed unless a target failed (or was skipped
    without ``allow_skipped``)."""

    report: VerifyReport


@dataclass
class ProxyComparisonResult(_ProbeRunResult):
    """``verify --against-proxy``: per proxied name, the proxy's answer against the direct
    target's; passed only when every name is ``same`` (skipped ones with ``allow_skipped``)."""

    report: ProxyComparisonReport


@dataclass
class HistoryResult:
    """``history``: every recorded run, newest first."""

    SCHEMA: ClassVar[str] = schema_id("history")
    history: History
    exit_code: int = EXIT_OK

    def as_json(self) -> dict[str, Any]:
        return {"schema": self.SCHEMA, **self.history.as_dict()}


@dataclass
class UnlockResult:
    """``unlock``: the expired lock released, or ``None`` when no lock was held."""

    SCHEMA: ClassVar[str] = schema_id("unlock")
    run: UnlockRun
    exit_code: int = EXIT_OK

    def as_json(self) -> dict[str, Any]:
        return {"schema": self.SCHEMA, **self.run.as_dict()}


@dataclass
class NewResult:
    """``new``: the migration file written."""

    SCHEMA: ClassVar[str] = schema_id("new")
    path: Path
    folder: Path
    copied: list[Path] = field(default_factory=list)  # bundled files copied into a new folder
    exit_code: int = EXIT_OK

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "path": str(self.path),
            "copied": [str(p) for p in self.copied],
        }
