"""Steps several commands share: Redis gates, the lock lease, the questions they ask."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from layra_migrate.commands._hooks import (
    Confirm,
    Hooks,
)
from layra_migrate.commands._results import (
    DEFAULT_PLAN,
)
from layra_migrate.decommission.models import RunResult
from layra_migrate.errors import (
    ConfigError,
    LayraMigrateError,
    RefusedError,
)
from layra_migrate.settings import Settings

if TYPE_CHECKING:
    from layra_migrate.engine.cache import CacheGate, RedisCache
    from layra_migrate.engine.context import Progress, StopFlag
    from layra_migrate.engine.preflight import Preflight
    from layra_migrate.engine.runner import RollbackResult as RollbackRun
    from layra_migrate.engine.runner import RunOptions


# ---------------------------------------------------------------------------------------
# Shared steps


def _lock_ttl(settings: Settings) -> float:
    from layra_migrate.engine.lock import TTL_ENV, ttl_from_env

    return ttl_from_env(settings.env.get(TTL_ENV))


def _run_options(
    settings: Settings,
    command: str,
    *,
    batch_size: int,
    stop: StopFlag,
    progress: Progress | None,
    dry_run: bool = False,
    cache: RedisCache | None = None,
) -> RunOptions:
    """The engine's options for a run under the lease lock (no progress when quiet)."""
    from layra_migrate.engine.runner import RunOptions

    options = RunOptions(
        dry_run=dry_run,
        batch_size=batch_size,
        lock_ttl_s=_lock_ttl(settings),
        stop=stop,
        cache=cache,
        command=command,
    )
    if progress is not None:
        options.progress = progress
    return options


def _plan_path(plan: str | Path | None) -> Path:
    if plan is not None:
        return Path(plan)
    if DEFAULT_PLAN.is_file():
        return DEFAULT_PLAN
    raise ConfigError(
        "no plan given and no ./plan.yaml",
        hint="write one with `layra-migrate audit --plan-out plan.yaml`, review "
        "it, then pass --plan plan.yaml",
    )


def _ask(confirm: Confirm, question: str, expected: str | None = None) -> None:
    if not confirm(question, expected):
        raise RefusedError("not confirmed; nothing was written")


async def _check_redis(url: str | None) -> CacheGate:
    """Redis as the real run will use it: connected, and checked for the DB that holds
    Layra's cache (the same for a dry run)."""
    from layra_migrate.engine.cache import open_checked

    return await open_checked(url)


def _redis_refusal(gate: CacheGate) -> LayraMigrateError | None:
    """What stops a real run at Redis: unreachable (exit 3) or the wrong DB (exit 4)."""
    if gate.unreachable is not None:
        return gate.unreachable
    if gate.wrong_db:
        return RefusedError(
            gate.wrong_db + "; nothing was written",
            hint="pass --redis-url with the DB that holds them",
        )
    return None


_NO_REDIS_WARNING = (
    "no --redis-url: Layra's cached model configs (conv_model_config:*, model_config:*) "
    "will not be cleared and may serve the old URL for up to 15 minutes after the write"
)


def _where(settings: Settings, database: str) -> str:
    """``database D on <masked URI>``: what a prompt names as its target."""
    from layra_migrate import redact

    uri = settings.mongo_uri.value
    shown = str(redact.mask_url(uri)) if uri else "(no URI)"
    return f"database {database!r} on {shown}"


async def _pending_ids(db: Any, migrations: Any) -> list[str]:
    """The migrations a rewrite would run now (pending, interrupted, rolled back)."""
    from layra_migrate.engine.ledger import NEEDS_UP, Ledger, LedgerState

    states = await Ledger(db).states()
    return [
        m.id
        for m in migrations
        if (states[m.id].state if m.id in states else LedgerState.PENDING) in NEEDS_UP
    ]


def _rewrite_question(
    settings: Settings,
    database: str,
    pre: Preflight,
    pending: list[str],
    accept_changed: str | None,
) -> str:
    models = len(pre.to_write)
    parts = [
        f"Rewrite {pre.references} proxied reference(s) of {models} model name(s) in "
        f"{_where(settings, database)}",
        f"migration(s): {', '.join(pending) if pending else 'none pending'}",
    ]
    if pre.blocking:
        left = sum(b.references for b in pre.blocking)
        parts.append(f"{left} reference(s) of {len(pre.blocking)} name(s) stay on the proxy")
    if accept_changed:
        parts.append(f"accepting the changed file of {accept_changed}")
    return "; ".join(parts) + ". Proceed?"


def _rollback_question(settings: Settings, database: str, preview: RollbackRun) -> str:
    ids = [m.id for m in preview.migrations]
    restores = sum(s.restored for s in preview.stats.values())
    conflicts = preview.conflict_count
    what = ", ".join(ids) if ids else "nothing (no applied migration)"
    text = f"Roll back {what} in {_where(settings, database)}: {restores} document(s) to restore"
    forced = sum(s.forced for s in preview.stats.values())
    if forced:
        text += (
            f", {forced} of them changed since the migration (conflicts) and OVERWRITTEN "
            "with --force (their later edits to migrated fields are lost)"
        )
    if conflicts:
        text += f", {conflicts} conflict(s) changed since the migration, left alone"
    return text + ". Proceed?"


def _docker_host(client: Any, given: bool) -> str:
    """The Docker engine a prompt names: ``DOCKER_HOST`` (masked), unless the caller
    passed its own client (then the client's address)."""
    from layra_migrate import redact
    from layra_migrate.decommission.client import docker_host

    def shown(url: str) -> str:  # unix:///path stays as written; credentials are masked
        return str(redact.mask_url(url)) if "@" in url or "?" in url else redact.scrub(url)

    if not given:
        return f"Docker host {shown(docker_host())}"
    base = getattr(getattr(client, "api", None), "base_url", None)
    return f"Docker host {shown(str(base))}" if base else "the given Docker client"


def _decommission_question(client: Any, given: bool, result: RunResult, opts: Any) -> str:
    names = ", ".join(c.name for c in result.containers) or "no container"
    action = "stops, archives and REMOVES" if opts.remove else "stops and archives"
    text = (
        f"This {action} the {result.project!r} stack on {_docker_host(client, given)}: "
        f"{len(result.containers)} container(s) ({names}), {len(result.volumes)} volume(s)"
    )
    if opts.remove_volumes:
        text += " (volumes REMOVED after the archive is verified)"
    text += f"; archive: {opts.archive_dir}"
    if opts.force:
        text += f"; FORCED past the interlock ({opts.reason})"
    return text + "."


def _restore_question(
    client: Any, given: bool, root: Path, manifest: dict[str, Any], project: str
) -> str:
    containers = manifest.get("containers") or []
    names = ", ".join(str(c.get("name")) for c in containers if isinstance(c, dict))
    volumes = manifest.get("volumes") or []
    return (
        f"This restores the {project!r} stack on {_docker_host(client, given)} from {root}: "
        f"{len(containers)} container(s) ({names or 'none'}), {len(volumes)} volume(s)."
    )


async def _open_cache(url: str | None, dry_run: bool) -> RedisCache | None:
    """Redis for a writing run, before any MongoDB write: exit 3 unreachable, exit 4 when
    the chosen DB holds none of Layra's cache keys but another DB does."""
    if not url or dry_run:
        return None
    gate = await _check_redis(url)
    refusal = _redis_refusal(gate)
    if refusal is not None:
        await gate.close()
        raise refusal
    return gate.cache


async def _warn_if_backend_runs(hooks: Hooks) -> None:
    """Layra's editor autosaves whole workflows: warn when its backend still runs."""
    import asyncio

    def probe() -> list[str]:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return [
                c.name
                for c in client.containers.list(filters={"status": "running"})
                if "layra-backend" in c.name or "layra-frontend" in c.name
            ]
        finally:
            client.close()

    try:
        names = await asyncio.wait_for(asyncio.to_thread(probe), 3)
    except Exception:  # noqa: BLE001 - Docker is optional here
        return
    if names:
        hooks.warn(
            f"Layra is running ({', '.join(names)}): stop its backend and frontend "
            "during the rewrite, or autosaves may overwrite migrated workflows"
        )
