"""`layra-migrate history`: every recorded run, newest first."""

from __future__ import annotations

from typing import Annotated

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
    make_output,
    run,
    show_settings,
)


@app.command()
def history(
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", metavar="N", min=1, help="Show only the newest N runs.", show_default=False
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
    """Show every recorded run, newest first. Read-only.

    Rewrites, rollbacks (forced ones flagged), accepted file changes (--accept-changed,
    with the reason), decommissions and restores: when (UTC), who (user@host), how long,
    what it changed and how it ended. `status` shows each migration's current state.

    Example:

    \b
        layra-migrate history --env-file /srv/layra/.env

    Exit codes: 0 done, 2 bad input, 3 MongoDB unreachable.
    """
    output = make_output(json_out, verbose, debug)

    async def body() -> int:
        from layra_migrate import commands
        from layra_migrate.settings import load_settings
        from layra_migrate.views.history import render_history

        settings = load_settings(mongo_uri=mongo_uri, db=db, env_file=env_file, timeout_s=timeout)
        show_settings(output, settings)
        result = await commands.history(settings, limit=limit)
        if output.json_mode:
            output.emit_json(result.as_json())
        else:
            render_history(result.history, output)
        return result.exit_code

    run("history", output, body)
