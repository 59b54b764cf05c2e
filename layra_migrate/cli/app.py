"""The Typer application object and the global options (``--version``)."""

from __future__ import annotations

from typing import Annotated

import typer

from layra_migrate import __version__

app = typer.Typer(
    name="layra-migrate",
    help=(
        "Move a Layra deployment off its LiteLLM proxy onto direct provider calls, "
        "reversibly, and retire the proxy stack.\n\n"
        "Phases, in order: audit -> verify --plan -> rewrite -> verify -> decommission."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"layra-migrate {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Move a Layra deployment off its LiteLLM proxy, reversibly."""
