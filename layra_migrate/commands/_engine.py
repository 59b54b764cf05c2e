"""The migration commands: audit, rewrite, rollback, status, history, check, new, unlock."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from layra_migrate.commands._hooks import (
    _QUIET,
    Confirm,
    Hooks,
    assume_yes,
    no_confirmation,
)
from layra_migrate.commands._results import (
    AuditResult,
    CheckResult,
    HistoryResult,
    NewResult,
    RewriteResult,
    RollbackResult,
    StatusResult,
    UnlockResult,
)
from layra_migrate.commands._steps import (
    _NO_REDIS_WARNING,
    _ask,
    _check_redis,
    _open_cache,
    _pending_ids,
    _plan_path,
    _redis_refusal,
    _rewrite_question,
    _rollback_question,
    _run_options,
    _warn_if_backend_runs,
)
from layra_migrate.errors import (
    LayraMigrateError,
    RefusedError,
    UsageError,
)
from layra_migrate.settings import Settings

if TYPE_CHECKING:
    from layra_migrate.engine.context import StopFlag


# ---------------------------------------------------------------------------------------
# The commands


async def audit(
    settings: Settings,
    *,
    proxy_urls: Iterable[str] = (),
    plan_out: str | Path | None = None,
    hooks: Hooks = _QUIET,
    litellm_db_container: str | None = None,
    litellm_env_file: str | Path | None = None,
) -> AuditResult:
    """Report where every model configuration points; read-only for Layra's data.

    Resolves proxied names through ``settings.litellm_config`` when set, in the proxy's
    own environment (``litellm_env_file``, else the ``.env`` beside the compose file
    holding the config, else the tool's environment: litellm/proxy_env.py), marks the
    names the proxy's own database defines (``litellm_db_container``, or found through
    Docker: litellm/proxy_db.py), and writes the reviewable plan to ``plan_out`` when
    given.
    """
    from layra_migrate.audit import run_audit
    from layra_migrate.litellm.config import load_config
    from layra_migrate.litellm.proxy_db import mark_proxy_db_models
    from layra_migrate.mongo import connect
    from layra_migrate.plan import plan_from_report, write_plan
    from layra_migrate.proxy import ProxySet

    proxies = ProxySet.build(list(proxy_urls))
    config_path = settings.litellm_config.value
    config = load_config(config_path) if config_path else None
    proxy_env = None
    if config is None:
        hooks.warn("no --litellm-config: proxied names are listed but not resolved")
    else:
        from layra_migrate.litellm.proxy_env import load_proxy_environment

        proxy_env = load_proxy_environment(
            litellm_env_file,
            config.path,
            config.environment_variables,
            settings.env.get,
            required=litellm_env_file is not None,
        )
    async with connect(settings) as conn:
        with hooks.progress() as progress:
            report = await run_audit(
                conn.db, proxies, config, settings.env, proxy_env, progress=progress
            )
    proxy_db = mark_proxy_db_models(report, config, litellm_db_container)
    written = write_plan(plan_from_report(report), plan_out) if plan_out else None
    return AuditResult(report, written, proxy_db=proxy_db)


async def rewrite(
    settings: Settings,
    *,
    plan: str | Path | None = None,
    dry_run: bool = False,
    skip_unresolved: bool = False,
    accept_changed: str | None = None,
    reason: str | None = None,
    batch_size: int = 500,
    summary: bool = False,
    out: str | Path | None = None,
    confirm: Confirm = no_confirmation,
    hooks: Hooks = _QUIET,
    stop: StopFlag | None = None,
) -> RewriteResult:
    """Apply pending migrations: point proxied model configs straight at their providers.

    Preflight (the audit against the plan, key variables, Layra's unique-name rule, the
    Redis DB) refuses before anything is written; Redis (``settings.redis_url``) is
    reached before the confirmation; every change is journaled before it is written;
    the cached model configs are deleted afterwards. ``dry_run`` writes nothing at all,
    asks nothing and never refuses: the result's ``dry_plan`` holds the summary, every
    blocker and the diff, and ``exit_code`` says what the real run would do (0 or 4);
    ``out`` writes that plan as JSON (keys masked); ``summary`` leaves the diff out of
    ``as_json()``.
    """
    from layra_migrate.engine.context import StopFlag
    from layra_migrate.engine.discovery import discover
    from layra_migrate.engine.preflight import preflight
    from layra_migrate.engine.runner import Store, apply
    from layra_migrate.mongo import connect
    from layra_migrate.plan import read_plan

    if (accept_changed is None) != (reason is None):
        raise UsageError("--accept-changed ID and --reason TEXT go together")
    if (summary or out is not None) and not dry_run:
        raise UsageError("--summary and --out go with --dry-run")
    migrations = discover(settings.migrations_dir.value)
    plan_path = _plan_path(plan)
    the_plan = read_plan(plan_path)
    stop = stop or StopFlag()
    async with connect(settings) as conn:
        with hooks.progress() as progress:
            pre = await preflight(
                conn.db,
                the_plan,
                settings.env,
                skip_unresolved=skip_unresolved,
                collect=True,
                progress=progress,
            )
        gate = await _check_redis(settings.redis_url.value)  # the dry run checks it too
        cache = None if dry_run else gate.cache
        if not dry_run:
            refusal = pre.refusal() or _redis_refusal(gate)
            if refusal is not None:
                await gate.close()
                raise refusal
            hooks.rewrite_preflight(pre, the_plan, plan_path)
        try:
            if not dry_run:
                pending = await _pending_ids(conn.db, migrations)
                if pending:
                    await _warn_if_backend_runs(hooks)
                    if cache is None:
                        hooks.warn(_NO_REDIS_WARNING)
                if pending or accept_changed:  # else nothing is written: nothing to ask
                    _ask(
                        confirm,
                        _rewrite_question(settings, conn.db.name, pre, pending, accept_changed),
                    )
            hooks.writing(stop)
            with hooks.progress() as progress:
                options = _run_options(
                    settings,
                    "rewrite",
                    dry_run=dry_run,
                    batch_size=batch_size,
                    stop=stop,
                    cache=cache,
                    progress=progress,
                )
                result = await apply(
                    Store(conn.db, conn.client, conn.topology.transactions),
                    migrations,
                    plan=pre.plan or the_plan,
                    keys=pre.keys,
                    options=options,
                    accept_changed={accept_changed: reason or ""} if accept_changed else None,
                )
        finally:
            await gate.close()
    dry_plan = None
    if dry_run:
        from layra_migrate.dryrun import build, write_out

        dry_plan = build(
            str(settings.db.value),
            str(plan_path),
            pre,
            result.changes,
            len(result.cache_keys),
            gate,
        )
        if out is not None:
            write_out(dry_plan, out)
    return RewriteResult(settings.db.value, dry_run, plan_path, pre, result, dry_plan, summary)


async def rollback(
    settings: Settings,
    *,
    to: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    batch_size: int = 500,
    confirm: Confirm = no_confirmation,
    hooks: Hooks = _QUIET,
    stop: StopFlag | None = None,
) -> RollbackResult:
    """Restore the journal's before-images of the newest applied migration (with ``to``:
    that one and every later one). Conflicting documents are left alone and listed
    (``exit_code`` 6) unless ``force``."""
    from layra_migrate.engine.context import StopFlag
    from layra_migrate.engine.discovery import discover
    from layra_migrate.engine.runner import RunOptions, Store
    from layra_migrate.engine.runner import rollback as do_rollback
    from layra_migrate.mongo import connect
    from layra_migrate.progress import NullProgress

    migrations = discover(settings.migrations_dir.value)
    stop = stop or StopFlag()
    redis_problem: LayraMigrateError | None = None
    confirmed: list[str] | None = None  # the migrations the person said yes to
    async with connect(settings) as conn:
        if dry_run:  # the same Redis check as the real run; reported, never refused
            gate = await _check_redis(settings.redis_url.value)
            await gate.close()
            redis_problem = _redis_refusal(gate)
        cache = await _open_cache(settings.redis_url.value, dry_run)
        try:
            if not dry_run:
                if cache is None:
                    hooks.warn(_NO_REDIS_WARNING)
                if confirm is not assume_yes:
                    # What the prompt names: the migrations, the documents, the conflicts
                    # (a read-only scan: the dry run of this same rollback).
                    with hooks.progress() as progress:
                        preview = await do_rollback(
                            Store(conn.db, conn.client, conn.topology.transactions),
                            migrations,
                            to=to,
                            force=force,
                            options=RunOptions(
                                dry_run=True,
                                batch_size=batch_size,
                                stop=stop,
                                command="rollback",
                                progress=progress if progress is not None else NullProgress(),
                            ),
                        )
                    confirmed = [m.id for m in preview.migrations]
                    if confirmed:  # else nothing is written: nothing to ask
                        _ask(confirm, _rollback_question(settings, conn.db.name, preview))
            hooks.writing(stop)
            with hooks.progress() as progress:
                options = _run_options(
                    settings,
                    "rollback",
                    dry_run=dry_run,
                    batch_size=batch_size,
                    stop=stop,
                    cache=cache,
                    progress=progress,
                )
                result = await do_rollback(
                    Store(conn.db, conn.client, conn.topology.transactions),
                    migrations,
                    to=to,
                    force=force,
                    options=options,
                    expect=confirmed,
                )
        finally:
            if cache is not None:
                await cache.close()
    return RollbackResult(settings.db.value, dry_run, force, result, redis_problem)


async def status(settings: Settings) -> StatusResult:
    """Every migration's state (applied, pending, ...), who ran it and when, and the lock.
    Read-only."""
    from layra_migrate.engine.discovery import discover
    from layra_migrate.engine.runner import status as read_status
    from layra_migrate.mongo import connect

    migrations = discover(settings.migrations_dir.value)
    async with connect(settings) as conn:
        report = await read_status(conn.db, migrations)
    return StatusResult(report)


async def history(settings: Settings, *, limit: int | None = None) -> HistoryResult:
    """Every recorded run (rewrite, rollback with --force or not, accepted changes,
    decommission, restore): who, when (UTC), how long, counts, outcome; newest first.
    Read-only."""
    from layra_migrate.history import read_history
    from layra_migrate.mongo import connect

    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    async with connect(settings) as conn:
        found = await read_history(conn.db, limit=limit)
    return HistoryResult(found)


async def check(
    settings: Settings,
    *,
    plan: str | Path | None = None,
    scratch_db: str | None = None,
    batch_size: int = 500,
    hooks: Hooks = _QUIET,
    stop: StopFlag | None = None,
) -> CheckResult:
    """Prove reversibility (up, down, up, up) on a scratch copy; the real collections
    are only read. Blocking names stay on the proxy in the check; a missing key
    variable gets a placeholder (scratch only)."""
    from layra_migrate.engine.check import run_check
    from layra_migrate.engine.context import StopFlag
    from layra_migrate.engine.discovery import discover
    from layra_migrate.engine.preflight import preflight
    from layra_migrate.mongo import connect
    from layra_migrate.plan import read_plan

    migrations = discover(settings.migrations_dir.value)
    the_plan = read_plan(_plan_path(plan))
    stop = stop or StopFlag()
    async with connect(settings) as conn:
        with hooks.progress() as progress:
            pre = await preflight(
                conn.db,
                the_plan,
                settings.env,
                skip_unresolved=True,
                keys_required=False,
                progress=progress,
            )
        for b in pre.blocking:
            hooks.info(
                f"blocking (left on the proxy in the check): {b.model_name} "
                f"({b.references}): {b.reason}"
            )
        if pre.placeholder_keys:
            hooks.warn(
                "key variable(s) not set, placeholders used on the scratch copy: "
                + ", ".join(pre.placeholder_keys)
            )
        hooks.writing(stop)
        with hooks.progress() as progress:
            options = _run_options(
                settings, "check", batch_size=batch_size, stop=stop, progress=progress
            )
            result = await run_check(
                conn.client,
                conn.db,
                migrations,
                plan=pre.plan or the_plan,
                keys=pre.keys,
                options=options,
                scratch_name=scratch_db,
            )
    return CheckResult(settings.db.value, pre, result)


def new(settings: Settings, name: str) -> NewResult:
    """Scaffold the next migration file (``NNNN_name.py``) in ``settings.migrations_dir``
    (default: ``./migrations`` of the operator's project; never the installed package),
    numbered after the highest bundled or project migration."""
    from layra_migrate.engine.scaffold import PROJECT_DIR, create

    folder = Path(settings.migrations_dir.value or PROJECT_DIR)
    done = create(folder, name)
    return NewResult(done.path, folder, done.copied)


async def unlock(settings: Settings, *, if_stale: bool) -> UnlockResult:
    """Release a crashed run's expired lock; a live lock is never released (refused,
    exit 4). ``if_stale`` must be true: it is the only mode."""
    from layra_migrate.engine.lock import unlock_if_stale
    from layra_migrate.mongo import connect

    if not if_stale:
        raise UsageError("unlock only releases an expired lock: pass --if-stale")
    async with connect(settings) as conn:
        result = await unlock_if_stale(conn.db)
    if result.held is not None:
        raise RefusedError(
            f"the lock is live, not released: {result.held.describe()}",
            hint="wait for that run to finish or its lease to expire",
        )
    return UnlockResult(result)
