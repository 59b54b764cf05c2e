"""The interlock: never retire the proxy while Layra still points at it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from layra_migrate import toolstate
from layra_migrate.decommission.models import InterlockReport
from layra_migrate.proxy import ProxySet

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from layra_migrate.decommission.discovery import StackContainer
    from layra_migrate.settings import Environment


async def count_references(db: AsyncDatabase[dict[str, Any]], env: Environment,
                           proxies: ProxySet | None = None) -> InterlockReport:
    """The audit's reference count (all four places) plus the verify-record warning."""
    from layra_migrate.audit import run_audit

    report = await run_audit(db, proxies or ProxySet.build(), None, env)
    result = InterlockReport(
        checked=True, via_proxy=report.via_proxy,
        by_location={k: v.via_proxy for k, v in report.locations.items()})
    last = await latest_verify(db)
    if last is None:
        result.warnings.append("no verify run is recorded: run `layra-migrate verify` against "
                               "the database first")
    elif (last.get("source") not in (None, "database") or int(last.get("failed") or 0) > 0
          or int(last.get("ok") or 0) == 0):
        result.warnings.append(
            f"the last verify run (source {last.get('source')!r}, ok {last.get('ok')}, "
            f"failed {last.get('failed')}) is not a successful check of the database targets")
    return result


async def latest_verify(db: AsyncDatabase[dict[str, Any]]) -> dict[str, Any] | None:
    names = await db.list_collection_names(filter={"name": toolstate.VERIFY_RUNS})
    if not names:
        return None
    cursor = db[toolstate.VERIFY_RUNS].find({}).sort([("finished_at", -1), ("_id", -1)]).limit(1)
    async for doc in cursor:
        return dict(doc)
    return None


def backend_warnings(backends: list[StackContainer], proxies: ProxySet | None = None) -> list[str]:
    """A Layra backend container whose environment still points at the proxy."""
    proxies = proxies or ProxySet.build()
    out = []
    for c in backends:
        hits = [k for k, v in c.env().items() if "://" in v and proxies.matches(v.strip())]
        if hits:
            out.append(f"container {c.name} points at the proxy through "
                       f"{', '.join(sorted(hits))}: update its environment and recreate it")
    return out
