"""`layra-migrate decommission` and `layra-migrate restore`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from layra_migrate.cli.app import app
from layra_migrate.cli.common import (
    DbOpt,
    DebugOpt,
    EnvFileOpt,
    JsonOpt,
    MongoUriOpt,
    TimeoutOpt,
    VerboseOpt,
    YesOpt,
    confirm,
    make_output,
    run,
    show_settings,
)

if TYPE_CHECKING:
    from layra_migrate.decommission.models import InterlockReport, RunResult
    from layra_migrate.render import Output
    from layra_migrate.settings import Settings


@app.command()
def decommission(
    project: Annotated[str, typer.Option(
        "--project", help="Compose project name of the LiteLLM stack.")] = "litellm",
    archive_dir: Annotated[Path | None, typer.Option(
        "--archive-dir", help="Folder for this run's archive (must not exist or be empty) "
        "[default: ./litellm-archive-<UTC timestamp>]", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Discover, check and print the plan; touch nothing.")] = False,
    yes: YesOpt = False,
    remove: Annotated[bool, typer.Option(
        "--remove", help="After the archive is verified, remove the stack's containers and "
        "its own networks.")] = False,
    remove_volumes: Annotated[bool, typer.Option(
        "--remove-volumes", help="With --remove: also remove the project's volumes.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Proceed although Layra still references the proxy (needs --reason).")
    ] = False,
    reason: Annotated[str | None, typer.Option(
        "--reason", help="Why --force is used; recorded in the archive and the ledger.",
        show_default=False)] = None,
    proxy_url: Annotated[list[str] | None, typer.Option(
        "--proxy-url", help="Another URL that means the proxy (repeatable).",
        show_default=False)] = None,
    mongo_uri: MongoUriOpt = None,
    db: DbOpt = None,
    env_file: EnvFileOpt = None,
    timeout: TimeoutOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Stop, archive and optionally remove the LiteLLM stack, with a way back.

    Finds the stack by compose labels (and the usual container names), refuses
    while any Layra model configuration still points at the proxy, then: stops
    the proxy, dumps the database while it runs (pg_dump -Fc), stops the cache
    and the database last, copies every volume and the compose directory
    (including .env) into a 0700 archive with manifest.json and SHA256SUMS,
    sets every restart policy to "no", and verifies the archive. Only then,
    with --remove, removes containers and networks (volumes with
    --remove-volumes). A failure before verification restarts what was
    running. Prints the provider key names to rotate (never values). Docker is
    reached through DOCKER_HOST.

    Example:

        layra-migrate decommission --env-file /srv/layra/.env --dry-run
        layra-migrate decommission --archive-dir /root/litellm-archive --yes

    Exit codes: 0 done, 2 bad input or not confirmed on a non-interactive
    terminal, 3 Docker or MongoDB unreachable, 4 refused (references remain,
    nothing found, image missing), 5 failed and rolled back (archive
    incomplete) or removal failed, 130 interrupted and rolled back.
    """
    output = make_output(json_out, verbose, debug)

    async def body() -> int:
        from layra_migrate.decommission.archive import default_archive_dir
        from layra_migrate.decommission.client import connect as docker_connect
        from layra_migrate.decommission.discovery import discover, find_backends
        from layra_migrate.decommission.execute import Options, execute, new_result
        from layra_migrate.decommission.interlock import backend_warnings
        from layra_migrate.decommission.models import SecurityReport
        from layra_migrate.decommission.security import check_proxy, key_names_from_env
        from layra_migrate.errors import RefusedError, UsageError
        from layra_migrate.proxy import ProxySet
        from layra_migrate.settings import load_settings

        if remove_volumes and not remove:
            raise UsageError("--remove-volumes needs --remove")
        if force and not (reason and reason.strip()):
            raise UsageError("--force needs --reason TEXT (recorded in the archive and ledger)")
        if reason and not force:
            raise UsageError("--reason is only meaningful with --force")
        settings = load_settings(mongo_uri=mongo_uri, db=db, env_file=env_file, timeout_s=timeout)
        show_settings(output, settings)

        client = docker_connect()
        stack = discover(client, project, with_sizes=True)
        extra = list(proxy_url or [])
        for c in stack.by_role("proxy"):
            for host in {c.name, c.service} - {None}:
                extra.append(f"http://{host}:4000/v1")
        proxies = ProxySet.build(extra)
        interlock = await _interlock(settings, proxies, force, reason, output)
        if interlock.via_proxy and not force:
            where = ", ".join(f"{k} {v}" for k, v in interlock.by_location.items() if v)
            raise RefusedError(
                f"{interlock.via_proxy} model configuration(s) still point at the proxy "
                f"({where}); nothing was stopped",
                hint="run `layra-migrate rewrite` first, or --force --reason TEXT")

        opts = Options(project=project, archive_dir=(archive_dir or default_archive_dir())
                       .expanduser().absolute(), dry_run=dry_run, remove=remove,
                       remove_volumes=remove_volumes, force=force, reason=reason)
        result = new_result(stack, opts)
        result.interlock = interlock
        result.warnings.extend(interlock.warnings)
        result.warnings.extend(backend_warnings(find_backends(client), proxies))
        proxy = next(iter(stack.by_role("proxy")), None)
        if dry_run:
            result.archive = str(opts.archive_dir)
            security = SecurityReport(proxy_image=proxy.image if proxy else None,
                                      key_names=key_names_from_env(proxy.env_names)
                                      if proxy else [],
                                      detail="installed litellm version not checked in a dry run")
        else:
            security = check_proxy(client, proxy)
        result.security = security

        if dry_run:
            _emit_plan(output, result)
            return 0
        if not output.json_mode:
            from layra_migrate.views.decommission import render_plan

            render_plan(result, output)
        else:
            for w in result.warnings:
                output.warn(w)
        confirm(output, f"This stops (and archives) the {project!r} stack.", yes=yes,
                expected=project)

        def progress(step: str) -> None:
            if not output.json_mode:
                output.err.print(f"[dim]-> {step}[/]")

        started = datetime.now(UTC)
        result = execute(client, stack, opts, result, security=security, interlock=interlock,
                         progress=progress)
        await _record(settings, result, opts, started, output)
        if output.json_mode:
            output.emit_json(result.as_json())
        else:
            from layra_migrate.views.decommission import render_result

            render_result(result, output)
        if result.error:
            from rich.text import Text

            output.err.print(Text.assemble(("error: ", "bold red"), result.error),
                             soft_wrap=True)
        return result.exit_code

    run("decommission", output, body)


def _emit_plan(output: Output, result: RunResult) -> None:
    if output.json_mode:
        for w in result.warnings:
            output.warn(w)
        output.emit_json(result.as_json())
    else:
        from layra_migrate.views.decommission import render_plan

        render_plan(result, output)
        output.next_step("rerun without --dry-run to stop and archive the stack")


async def _interlock(settings: Settings, proxies: Any, force: bool, reason: str | None,
                     output: Output) -> InterlockReport:
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
        report = InterlockReport(checked=False, warnings=[
            f"interlock not checked: {exc.message}; proceeding because of --force"])
    report.forced = force
    report.reason = reason
    return report


async def _record(settings: Settings, result: RunResult, opts: Any, started: datetime,
                  output: Output) -> None:
    """One ledger record per run in layra_migrate_decommission (best effort)."""
    from layra_migrate import redact, toolstate
    from layra_migrate.mongo import connect

    doc: dict[str, Any] = {
        "kind": "decommission" if opts is not None else "restore", "project": result.project,
        "started_at": started.isoformat(), "finished_at": datetime.now(UTC).isoformat(),
        "archive": result.archive, "archive_verified": result.archive_verified,
        "rolled_back": result.rolled_back, "exit_code": result.exit_code,
        "steps": [s.as_dict() for s in result.steps],
        "containers": [c.as_dict() for c in result.containers],
        "interlock": result.interlock.as_dict() if result.interlock else None,
    }
    if opts is not None:
        doc.update({"forced": opts.force, "reason": opts.reason, "remove": opts.remove,
                    "remove_volumes": opts.remove_volumes})
    doc = redact.scrub_obj(doc)
    try:
        async with connect(settings) as conn:
            await conn.db[toolstate.DECOMMISSION_RUNS].insert_one(doc)
    except Exception as exc:  # noqa: BLE001 - the archive manifest holds the same facts
        output.warn(f"could not record the run in MongoDB ({exc.__class__.__name__}); "
                    "the output above is the record")


@app.command()
def restore(
    archive: Annotated[Path, typer.Argument(help="Archive folder written by decommission.",
                                            show_default=False)],
    yes: YesOpt = False,
    mongo_uri: MongoUriOpt = None,
    db: DbOpt = None,
    env_file: EnvFileOpt = None,
    timeout: TimeoutOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Undo a decommission from its archive.

    Verifies every checksum first (a mismatch or a crafted member: exit 5,
    nothing touched). Containers that still exist get their restart policies
    back and are started when they were running (database, cache, proxy),
    waiting for health checks. Removed ones are recreated: networks, volumes
    with their archived content, then the containers from their recorded
    inspect data. Docker is reached through DOCKER_HOST. The run is recorded in
    MongoDB's layra_migrate_decommission collection when MongoDB answers (never
    required).

    Example:

        layra-migrate restore ./litellm-archive-20261127T060000Z --yes

    Exit codes: 0 back to the recorded pre-state, 2 bad input or not confirmed
    on a non-interactive terminal, 3 Docker unreachable, 4 an image is missing
    (the compose directory is printed), 5 archive verification failed or the
    stack did not come back as recorded.
    """
    output = make_output(json_out, verbose, debug)

    async def body() -> int:
        from layra_migrate.decommission.client import connect as docker_connect
        from layra_migrate.decommission.restore import load_verified
        from layra_migrate.decommission.restore import restore as do_restore
        from layra_migrate.settings import load_settings

        settings = load_settings(mongo_uri=mongo_uri, db=db, env_file=env_file,
                                 timeout_s=timeout)
        manifest = load_verified(archive)
        project = str(manifest.get("project") or "")
        output.info(f"archive {archive}: every checksum matches")
        client = docker_connect()
        confirm(output, f"This restores the {project!r} stack from {archive}.", yes=yes,
                expected=project)
        started = datetime.now(UTC)
        result = do_restore(client, archive, manifest)
        await _record(settings, result, None, started, output)
        if output.json_mode:
            output.emit_json(result.as_json())
        else:
            from layra_migrate.views.decommission import render_restore

            render_restore(result, output)
        return result.exit_code

    run("restore", output, body)
