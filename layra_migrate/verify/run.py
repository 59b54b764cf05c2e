"""``verify``: collect the targets, probe every shape, record the run.

This module never prints and never exits; the CLI renders the
:class:`~layra_migrate.verify.report.VerifyReport`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from layra_migrate.verify.outcomes import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_S
from layra_migrate.verify.probing import ProbeResult, probe_all
from layra_migrate.verify.report import VerifyReport, record_run
from layra_migrate.verify.targets import (
    VerifyTarget,
    database_targets,
    expand_shapes,
    filter_provider,
    plan_targets,
)

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from layra_migrate.plan import Plan
    from layra_migrate.proxy import ProxySet
    from layra_migrate.settings import Environment


async def run_verify(
    db: AsyncDatabase[dict[str, Any]],
    database: str,
    *,
    proxies: ProxySet,
    env: Environment,
    plan: Plan | None = None,
    only: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    allow_skipped: bool = False,
    on_targets: Callable[[list[VerifyTarget]], None] | None = None,
    on_result: Callable[[ProbeResult], None] | None = None,
    record: bool = True,
) -> VerifyReport:
    """Collect the targets, probe them, record the run in ``layra_migrate_verify``."""
    from layra_migrate.errors import UsageError

    started = time.monotonic()
    report = VerifyReport(
        "plan" if plan is not None else "database",
        database,
        [],
        plan_path=str(plan.path) if plan is not None and plan.path else None,
        only=only,
        timeout_s=timeout_s,
        concurrency=concurrency,
    )
    if plan is not None:
        # The same staleness rule as rewrite: the audit's names, the plan module's check.
        from layra_migrate.audit import run_audit
        from layra_migrate.plan import check_fresh

        check_fresh(plan, await run_audit(db, plan.proxy, None, env))
    tset = (
        await plan_targets(plan, env, db)
        if plan is not None
        else await database_targets(db, proxies)
    )
    report.not_migrated = tset.not_migrated
    targets = filter_provider(tset.targets, only)
    if only and not targets:
        known = sorted({t.provider for t in tset.targets if t.provider != "-"})
        raise UsageError(
            f"no target of provider {only!r}", hint=f"providers here: {', '.join(known) or 'none'}"
        )
    targets = expand_shapes(targets)
    if on_targets is not None:
        on_targets(targets)
    report.results = await probe_all(
        targets, concurrency=concurrency, timeout_s=timeout_s, on_result=on_result
    )
    report.wall_ms = int((time.monotonic() - started) * 1000)
    if record:
        await record_run(db, report, allow_skipped)
    return report
