"""`layra-migrate decommission` and `layra-migrate restore`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    make_output,
    run,
    show_settings,
)

if TYPE_CHECKING:
    from layra_migrate.decommission.models import RunResult
    from layra_migrate.render import Output


@app.command()
def decommission(
    project: Annotated[
        str,
        typer.Option(
            "--project", metavar="NAME", help="Compose project name of the LiteLLM stack."
        ),
    ] = "litellm",
    archive_dir: Annotated[
        Path | None,
        typer.Option(
            "--archive-dir",
            metavar="DIR",
            help="Folder for this run's archive (must not exist or be empty) "
            "[default: ./litellm-archive-<UTC timestamp>]",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Discover, check and print the plan; touch nothing.")
    ] = False,
    yes: YesOpt = False,
    remove: Annotated[
        bool,
        typer.Option(
            "--remove",
            help="After the archive is verified, remove the stack's containers and "
            "its own networks.",
        ),
    ] = False,
    remove_volumes: Annotated[
        bool,
        typer.Option("--remove-volumes", help="With --remove: also remove the project's volumes."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Proceed although Layra still references the proxy (needs --reason)."
        ),
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            metavar="TEXT",
            help="Why --force is used; recorded in the archive and the ledger.",
            show_default=False,
        ),
    ] = None,
    proxy_url: Annotated[
        list[str] | None,
        typer.Option(
            "--proxy-url",
            metavar="URL",
            help="Another URL that means the proxy (repeatable).",
            show_default=False,
        ),
    ] = None,
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
        from layra_migrate import commands
        from layra_migrate.cli.hooks import CliHooks, asker
        from layra_migrate.settings import load_settings

        settings = load_settings(mongo_uri=mongo_uri, db=db, env_file=env_file, timeout_s=timeout)
        show_settings(output, settings)
        result = await commands.decommission(
            settings,
            project=project,
            archive_dir=archive_dir,
            dry_run=dry_run,
            remove=remove,
            remove_volumes=remove_volumes,
            force=force,
            reason=reason,
            proxy_urls=proxy_url or [],
            confirm=asker(output, yes=yes),
            hooks=CliHooks(output),
        )
        if result.dry_run:
            _emit_plan(output, result)
            return 0
        if output.json_mode:
            output.emit_json(result.as_json())
        else:
            from layra_migrate.views.decommission import render_result

            render_result(result, output)
        if result.error:
            from rich.text import Text

            output.err.print(Text.assemble(("error: ", "bold red"), result.error), soft_wrap=True)
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


@app.command()
def restore(
    archive: Annotated[
        Path,
        typer.Argument(
            metavar="ARCHIVE", help="Archive folder written by decommission.", show_default=False
        ),
    ],
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
        from layra_migrate import commands
        from layra_migrate.cli.hooks import CliHooks, asker
        from layra_migrate.settings import load_settings

        settings = load_settings(mongo_uri=mongo_uri, db=db, env_file=env_file, timeout_s=timeout)
        result = await commands.restore(
            settings, archive, confirm=asker(output, yes=yes), hooks=CliHooks(output)
        )
        if output.json_mode:
            output.emit_json(result.as_json())
        else:
            from layra_migrate.views.decommission import render_restore

            render_restore(result, output)
        return result.exit_code

    run("restore", output, body)
