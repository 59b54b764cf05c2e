"""verify and verify --against-proxy."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layra_migrate.commands._hooks import (
    _QUIET,
    Hooks,
)
from layra_migrate.commands._results import (
    ProxyComparisonResult,
    VerifyResult,
)
from layra_migrate.errors import (
    UsageError,
)
from layra_migrate.settings import Settings

if TYPE_CHECKING:
    from layra_migrate.verify import ProbeResult, VerifyTarget


def _check_probe_timeout(timeout_s: float) -> None:
    if not timeout_s > 0:
        raise UsageError("--probe-timeout must be a positive number of seconds")


def _probe_progress(
    progress: Any,
) -> tuple[Callable[[list[VerifyTarget]], None], Callable[[ProbeResult], None]]:
    """The callbacks that show the probes as one progress step (no-ops when quiet)."""

    def on_targets(targets: list[VerifyTarget]) -> None:
        if progress is not None:
            progress.start("probing", len(targets))

    def on_result(_result: ProbeResult) -> None:
        if progress is not None:
            progress.advance("probing")

    return on_targets, on_result


async def verify(
    settings: Settings,
    *,
    plan: str | Path | None = None,
    concurrency: int = 8,
    timeout_s: float = 30.0,
    only: str | None = None,
    allow_skipped: bool = False,
    proxy_urls: Iterable[str] = (),
    hooks: Hooks = _QUIET,
) -> VerifyResult:
    """Send one real test chat to every provider target and record the run (never keys).

    With ``plan``: the targets the plan would write. Without: the distinct targets the
    database holds now; references still on the proxy count as not migrated
    (``proxy_urls`` adds spellings of the proxy; a plan lists its own).
    """
    from layra_migrate.mongo import connect
    from layra_migrate.plan import read_plan
    from layra_migrate.proxy import ProxySet
    from layra_migrate.verify import run_verify

    _check_probe_timeout(timeout_s)
    the_plan = read_plan(plan) if plan is not None else None
    proxies = the_plan.proxy if the_plan is not None else ProxySet.build(list(proxy_urls))
    with hooks.progress() as progress:
        on_targets, on_result = _probe_progress(progress)
        async with connect(settings) as conn:
            report = await run_verify(
                conn.db,
                settings.db.value or "",
                proxies=proxies,
                env=settings.env,
                plan=the_plan,
                only=only,
                concurrency=concurrency,
                timeout_s=timeout_s,
                allow_skipped=allow_skipped,
                on_targets=on_targets,
                on_result=on_result,
            )
    return VerifyResult(report, allow_skipped)


async def verify_against_proxy(
    settings: Settings,
    *,
    plan: str | Path,
    proxy_endpoint: str | None = None,
    concurrency: int = 8,
    timeout_s: float = 30.0,
    only: str | None = None,
    allow_skipped: bool = False,
    hooks: Hooks = _QUIET,
) -> ProxyComparisonResult:
    """``verify --plan --against-proxy``: before the cut-over, send each proxied name's
    request through the running proxy and directly, and compare which upstream answered.

    ``proxy_endpoint`` replaces the proxy URL stored in Layra's documents (e.g. when the
    compose name does not resolve from here). Reads Layra's data only; records the
    comparison in ``layra_migrate_verify`` (never keys).
    """
    from layra_migrate.mongo import connect
    from layra_migrate.plan import read_plan
    from layra_migrate.verify.against_proxy import run_against_proxy

    _check_probe_timeout(timeout_s)
    the_plan = read_plan(plan)
    with hooks.progress() as progress:
        on_targets, on_result = _probe_progress(progress)
        async with connect(settings) as conn:
            report = await run_against_proxy(
                conn.db,
                settings.db.value or "",
                plan=the_plan,
                env=settings.env,
                proxy_endpoint=proxy_endpoint,
                only=only,
                concurrency=concurrency,
                timeout_s=timeout_s,
                allow_skipped=allow_skipped,
                on_targets=on_targets,
                on_result=on_result,
            )
    return ProxyComparisonResult(report, allow_skipped)
