"""decommission and restore, with the interlock and the run record."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layra_migrate.commands._hooks import (
    _QUIET,
    Confirm,
    Hooks,
    no_confirmation,
)
from layra_migrate.commands._results import (
    DecommissionResult,
)
from layra_migrate.commands._steps import (
    _ask,
    _decommission_question,
    _restore_question,
)
from layra_migrate.decommission.models import RunResult
from layra_migrate.errors import (
    RefusedError,
    UsageError,
)
from layra_migrate.settings import Settings

if TYPE_CHECKING:
    import docker

    from layra_migrate.decommission.models import InterlockReport
    from layra_migrate.proxy import ProxySet


async def decommission(
    settings: Settings,
    *,
    project: str = "litellm",
    archive_dir: str | Path | None = None,
    dry_run: bool = False,
    remove: bool = False,
    remove_volumes: bool = False,
    force: bool = False,
    reason: str | None = None,
    proxy_urls: Iterable[str] = (),
    confirm: Confirm = no_confirmation,
    hooks: Hooks = _QUIET,
    docker_client: docker.DockerClient | None = None,
) -> DecommissionResult:
    """Stop, archive and optionally remove the LiteLLM stack, with a way back.

    The interlock runs first: while any Layra model configuration points at the proxy
    (the default spellings, ``proxy_urls`` and the stack's own proxy container names on
    the proxy port) nothing is stopped (RefusedError, exit 4) unless ``force`` with a
    ``reason``; MongoDB unreachable is exit 3 unless forced (then recorded as unchecked).
    A dry run returns the plan. Otherwise ``confirm`` is asked with the project name,
    the steps run (a failure before the archive is verified rolls the stack back: the
    result carries exit 5 or 130) and the run is recorded in MongoDB (best effort).
    Docker is reached through ``DOCKER_HOST`` unless ``docker_client`` is given.
    """
    from layra_migrate.decommission.archive import default_archive_dir
    from layra_migrate.decommission.client import connect as docker_connect
    from layra_migrate.decommission.discovery import discover, find_backends
    from layra_migrate.decommission.execute import Options, execute, new_result
    from layra_migrate.decommission.interlock import backend_warnings
    from layra_migrate.decommission.models import SecurityReport
    from layra_migrate.decommission.security import check_proxy, key_names_from_env
    from layra_migrate.proxy import DEFAULT_PROXY_PORT, ProxySet

    if remove_volumes and not remove:
        raise UsageError("--remove-volumes needs --remove")
    if force and not (reason and reason.strip()):
        raise UsageError("--force needs --reason TEXT (recorded in the archive and ledger)")
    if reason and not force:
        raise UsageError("--reason is only meaningful with --force")

    client = docker_client if docker_client is not None else docker_connect()
    stack = discover(client, project, with_sizes=True)
    extra = list(proxy_urls)
    for c in stack.by_role("proxy"):
        for host in {c.name, c.service} - {None}:
            extra.append(f"http://{host}:{DEFAULT_PROXY_PORT}/v1")
    proxies = ProxySet.build(extra)
    interlock = await _interlock(settings, proxies, force, reason)
    if interlock.via_proxy and not force:
        where = ", ".join(f"{k} {v}" for k, v in interlock.by_location.items() if v)
        raise RefusedError(
            f"{interlock.via_proxy} model configuration(s) still point at the proxy "
            f"({where}); nothing was stopped",
            hint="run `layra-migrate rewrite` first, or --force --reason TEXT",
        )

    opts = Options(
        project=project,
        archive_dir=Path(archive_dir or default_archive_dir()).expanduser().absolute(),
        dry_run=dry_run,
        remove=remove,
        remove_volumes=remove_volumes,
        force=force,
        reason=reason,
    )
    result = new_result(stack, opts)
    result.interlock = interlock
    result.warnings.extend(interlock.warnings)
    result.warnings.extend(backend_warnings(find_backends(client), proxies))
    proxy = next(iter(stack.by_role("proxy")), None)
    if dry_run:
        result.archive = str(opts.archive_dir)
        result.security = SecurityReport(
            proxy_image=proxy.image if proxy else None,
            key_names=key_names_from_env(proxy.env_names) if proxy else [],
            detail="installed litellm version not checked in a dry run",
        )
        return result
    security = check_proxy(client, proxy)
    result.security = security

    hooks.decommission_plan(result)
    _ask(
        confirm,
        _decommission_question(client, docker_client is not None, result, opts),
        project,
    )
    started = datetime.now(UTC)
    with hooks.progress() as meter:
        result = execute(
            client,
            stack,
            opts,
            result,
            security=security,
            interlock=interlock,
            progress=hooks.decommission_step,
            meter=meter,
        )
    await _record(settings, result, opts, started, hooks)
    return result


async def restore(
    settings: Settings,
    archive: str | Path,
    *,
    confirm: Confirm = no_confirmation,
    hooks: Hooks = _QUIET,
    docker_client: docker.DockerClient | None = None,
) -> DecommissionResult:
    """Undo a decommission from its archive.

    Every checksum is verified before anything is touched (a mismatch: exit 5). The
    run is recorded in MongoDB when it answers (never required).
    """
    from layra_migrate.decommission.client import connect as docker_connect
    from layra_migrate.decommission.restore import load_verified
    from layra_migrate.decommission.restore import restore as do_restore

    root = Path(archive)
    with hooks.progress() as progress:
        manifest = load_verified(root, progress)
    project = str(manifest.get("project") or "")
    hooks.info(f"archive {root}: every checksum matches")
    client = docker_client if docker_client is not None else docker_connect()
    _ask(
        confirm,
        _restore_question(client, docker_client is not None, root, manifest, project),
        project,
    )
    started = datetime.now(UTC)
    result = do_restore(client, root, manifest)
    await _record(settings, result, None, started, hooks)
    return result


async def _interlock(
    settings: Settings, proxies: ProxySet, force: bool, reason: str | None
) -> InterlockReport:
    """MongoDB unreachable: exit 3, unless --force --reason (then recorded as unchecked)."""
    from layra_migrate.decommission.interlock import count_references
    from layra_migrate.decommission.models import InterlockReport
    from layra_migrate.errors import UnreachableError
    from layra_migrate.mongo import connect

    try:
        async with connect(settings) as conn:
            report = await count_references(conn.db, settings.env, proxies)
    except UnreachableError as exc:
        if not force:
            raise
        report = InterlockReport(
            checked=False,
            warnings=[f"interlock not checked: {exc.message}; proceeding because of --force"],
        )
    report.forced = force
    report.reason = reason
    return report


async def _record(
    settings: Settings, result: RunResult, opts: Any, started: datetime, hooks: Hooks
) -> None:
    """One ledger record per run in layra_migrate_decommission (best effort)."""
    from layra_migrate import redact, toolstate
    from layra_migrate.engine.lock import whoami
    from layra_migrate.mongo import connect

    finished = datetime.now(UTC)
    doc: dict[str, Any] = {
        "kind": "decommission" if opts is not None else "restore",
        "project": result.project,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_s": round((finished - started).total_seconds(), 3),
        "by": whoami(),
        "error": result.error,
        "archive": result.archive,
        "archive_verified": result.archive_verified,
        "rolled_back": result.rolled_back,
        "exit_code": result.exit_code,
        "steps": [s.as_dict() for s in result.steps],
        "containers": [c.as_dict() for c in result.containers],
        "interlock": result.interlock.as_dict() if result.interlock else None,
    }
    if opts is not None:
        doc.update(
            {
                "forced": opts.force,
                "reason": opts.reason,
                "remove": opts.remove,
                "remove_volumes": opts.remove_volumes,
            }
        )
    doc = redact.scrub_obj(doc)
    try:
        async with connect(settings) as conn:
            await conn.db[toolstate.DECOMMISSION_RUNS].insert_one(doc)
    except Exception as exc:  # noqa: BLE001 - the archive manifest holds the same facts
        hooks.warn(
            f"could not record the run in MongoDB ({exc.__class__.__name__}); "
            "the output above is the record"
        )
