"""The interlock: never retire the proxy while Layra still points at it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from layra_migrate import toolstate
from layra_migrate.decommission.models import InterlockReport
from layra_migrate.proxy import ProxySet

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from layra_migrate.decommission.discovery import StackContainer
    from layra_migrate.settings import Environment


async def count_references(
    db: AsyncDatabase[dict[str, Any]], env: Environment, proxies: ProxySet | None = None
) -> InterlockReport:
    """The audit's reference count (all four places) plus the verify-record warning."""
    from layra_migrate.audit import run_audit

    report = await run_audit(db, proxies or ProxySet.build(), None, env)
    by_location = {k: v.via_proxy for k, v in report.locations.items()}
    if report.unrecognised_via_proxy:
        # config-shaped objects outside the four places (e.g. a node nested deeper than the
        # search depth): the rewrite never migrates them, so they keep the proxy needed
        by_location["unrecognised"] = report.unrecognised_via_proxy
    result = InterlockReport(
        checked=True,
        via_proxy=report.via_proxy + report.unrecognised_via_proxy,
        by_location=by_location,
    )
    for u in [u for u in report.unrecognised if u.via_proxy][:20]:
        result.warnings.append(
            f"unrecognised model configuration at {u.where()} points at the proxy"
        )
    last = await latest_verify(db)
    if last is None:
        result.warnings.append(
            "no verify run of the database targets is recorded: run `layra-migrate verify` first"
        )
    elif not _passed(last):
        when = last.get("finished_at") or last.get("at")
        result.warnings.append(
            f"the last verify run of the database targets ({when}: ok {last.get('ok')}, "
            f"failed {last.get('failed')}) did not pass: run `layra-migrate verify`"
        )
    result.proxy_comparison = await comparison_summary(db)
    if result.proxy_comparison is not None and not result.proxy_comparison["passed"]:
        c = result.proxy_comparison
        result.warnings.append(
            f"the last verify --against-proxy ({c['at']}) found name(s) where going direct "
            f"changed the upstream: {', '.join(c['different']) or '-'}"
        )
    return result


async def comparison_summary(db: AsyncDatabase[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest ``verify --against-proxy`` record: when, whether every name was the
    same, and the names that were not (never keys)."""
    from layra_migrate.verify.against_proxy import SAME, last_comparison
    from layra_migrate.verify.outcomes import SKIPPED

    run = await last_comparison(db)
    if run is None:
        return None
    names = [n for n in run.get("names") or [] if isinstance(n, dict)]
    at: Any = run.get("finished_at") or run.get("at")
    return {
        "at": at.isoformat() if isinstance(at, datetime) else at,
        "passed": bool(run.get("passed")),
        "plan": run.get("plan"),
        "counts": run.get("counts") or {},
        "different": [
            f"{n.get('model_name')} ({n.get('status')})"
            for n in names
            if n.get("status") not in (SAME, SKIPPED)
        ],
    }


def _passed(run: dict[str, Any]) -> bool:
    if "passed" in run:
        return bool(run["passed"])
    return int(run.get("failed") or 0) == 0 and int(run.get("ok") or 0) > 0


async def latest_verify(db: AsyncDatabase[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest run recorded by ``verify`` against the database (not a plan)."""
    names = await db.list_collection_names(filter={"name": toolstate.VERIFY_RUNS})
    if not names:
        return None
    found: dict[str, Any] | None = await db[toolstate.VERIFY_RUNS].find_one(
        {"source": "database"}, sort=[("finished_at", -1), ("_id", -1)]
    )
    return found


def backend_warnings(backends: list[StackContainer], proxies: ProxySet | None = None) -> list[str]:
    """A Layra backend container whose environment still points at the proxy."""
    proxies = proxies or ProxySet.build()
    out = []
    for c in backends:
        hits = [k for k, v in c.env().items() if "://" in v and proxies.matches(v.strip())]
        if hits:
            out.append(
                f"container {c.name} points at the proxy through "
                f"{', '.join(sorted(hits))}: update its environment and recreate it"
            )
    return out
