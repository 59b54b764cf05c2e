"""Options shared by commands, and the one wrapper that maps errors to exit codes."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from layra_migrate import redact
from layra_migrate.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, LayraMigrateError

if TYPE_CHECKING:
    from layra_migrate.render import Output

# Start-up time matters (`--help` must stay close to bare `import typer, rich`):
# asyncio, Rich consoles and every driver are imported inside the commands.

MongoUriOpt = Annotated[
    str | None,
    typer.Option(
        "--mongo-uri",
        metavar="URI",
        help="MongoDB URI [env: LAYRA_MIGRATE_MONGO_URI, or Layra's MONGODB_URL + "
        "MONGODB_ROOT_USERNAME/PASSWORD]",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="NAME",
        help="Database name [env: LAYRA_MIGRATE_DB, MONGODB_DB; default chat_mongodb]",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
EnvFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--env-file",
        metavar="PATH",
        help="Env file to read (never overrides set variables) [default: ./.env if present]",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        help="Seconds to wait for MongoDB before giving up [default: 5]",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout.", rich_help_panel="Output")
]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "-v",
        "--verbose",
        help="Show effective settings and where each came from.",
        rich_help_panel="Output",
    ),
]
DebugOpt = Annotated[
    bool,
    typer.Option("--debug", help="Show tracebacks of internal errors.", rich_help_panel="Output"),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show what would change; write nothing.")
]
RedisUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        metavar="URL",
        help="Layra's Redis, to clear cached model configs [env: LAYRA_MIGRATE_REDIS_URL, "
        "REDIS_URL]",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
PlanOpt = Annotated[
    Path | None,
    typer.Option(
        "--plan",
        metavar="PATH",
        help="Plan file written by `audit --plan-out`.",
        show_default=False,
    ),
]
MigrationsDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--migrations-dir",
        metavar="DIR",
        help="Folder of migration files [env: LAYRA_MIGRATE_MIGRATIONS_DIR; "
        "default: the bundled migrations]",
        show_default=False,
    ),
]


def make_output(json_mode: bool = False, verbose: bool = False, debug: bool = False) -> Output:
    from layra_migrate.render import Output

    return Output(json_mode=json_mode, verbose=verbose, debug=debug)


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact.scrub(record.getMessage())
        record.args = ()
        if record.exc_info:  # the traceback is scrubbed too, not only the message
            import traceback

            record.exc_text = redact.scrub("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True


def setup_logging(output: Output) -> None:
    root = logging.getLogger("layra_migrate")
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ScrubFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(
        logging.DEBUG if output.debug else logging.INFO if output.verbose else logging.WARNING
    )
    root.propagate = False
    # Libraries' own logs (PyMongo's background tasks log whole tracebacks when the server
    # goes away mid-run): without a handler Python prints them raw on stderr, breaking the
    # one-line error. Silent by default; with --debug shown, scrubbed, from WARNING up.
    others = logging.getLogger()
    others.handlers.clear()
    if output.debug:
        others.addHandler(handler)
        others.setLevel(logging.WARNING)
    else:
        others.addHandler(logging.NullHandler())


def show_settings(output: Output, settings: Any) -> None:
    if not output.verbose:
        return
    from rich.table import Table

    table = Table(title="Effective settings", title_justify="left", box=None)
    table.add_column("setting")
    table.add_column("value")
    table.add_column("from")
    for name, value, source in settings.describe():
        table.add_row(name, value, source)
    from layra_migrate.render import print_table

    print_table(output.err, table)  # whole values, never cut (blocks when too narrow)


def run(
    command: str,
    output: Output,
    body: Callable[[], Awaitable[int | None]],
) -> None:
    """Run one command's async body at the edge; map every failure to its exit code.

    The body returns an exit code (or None for 0). Errors print one scrubbed
    line on stderr (and, with --json, an error object on stdout).
    """
    import asyncio

    setup_logging(output)
    code = 0
    previous_term = _sigterm_as_ctrl_c()
    try:
        code = asyncio.run(body()) or 0  # type: ignore[arg-type]
    except LayraMigrateError as exc:
        code = exc.exit_code
        _report_error(command, output, exc, code)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
        _report_error(command, output, "interrupted", code)
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        code = EXIT_INTERNAL
        if output.debug:
            import traceback

            sys.stderr.write(redact.scrub(traceback.format_exc()))
        _report_error(
            command,
            output,
            f"internal error: {exc.__class__.__name__}: {exc} "
            "(rerun with --debug for the traceback)",
            code,
        )
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    raise typer.Exit(code)


def _sigterm_as_ctrl_c() -> Any:
    """SIGTERM (``docker stop``, systemd, ``kill``) behaves like Ctrl-C: the command's
    interrupt path runs (batch finished, lock released, stack rolled back) and the exit
    is 130, instead of dying half-way with the default action. Commands that install
    their own handler (rewrite, rollback, check) override this one while they run."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):
        return None


def _report_error(command: str, output: Output, exc: object, code: int) -> None:
    from rich.text import Text

    message = redact.scrub(str(exc)).replace("\n", " ")
    output.err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    if output.json_mode:
        from layra_migrate.render import dumps

        sys.stdout.write(
            dumps({"schema": f"layra-migrate/{command}/v1", "error": message, "exit_code": code})
            + "\n"
        )
        sys.stdout.flush()


def confirm(output: Output, question: str, *, yes: bool, expected: str | None = None) -> None:
    """Ask before a write. Non-interactive without --yes is a usage error (exit 2)."""
    from layra_migrate.errors import RefusedError, UsageError

    if yes:
        return
    if not output.interactive:
        raise UsageError(
            "refusing to write without confirmation on a non-interactive terminal",
            hint="rerun with --yes",
        )
    if expected is not None:
        answer = typer.prompt(
            f"{question} Type {expected!r} to continue", default="", show_default=False, err=True
        )
        ok = answer.strip() == expected
    else:
        ok = typer.confirm(question, default=False, err=True)
    if not ok:
        raise RefusedError("not confirmed; nothing was written")
