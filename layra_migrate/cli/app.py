"""The Typer application object and the global options (``--version``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from layra_migrate import __version__

# The root help lists commands in the order an operator runs them; a command not
# named here (a new one) comes after these, in registration order.
PHASE_ORDER = (
    "audit",
    "verify",
    "rewrite",
    "rollback",
    "status",
    "history",
    "check",
    "new",
    "unlock",
    "decommission",
    "restore",
)


class PhaseOrderGroup(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(PHASE_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), names.index(n)))


app = typer.Typer(
    cls=PhaseOrderGroup,
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
