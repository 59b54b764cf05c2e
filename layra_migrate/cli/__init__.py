"""The command-line interface: a thin Typer layer over the library.

Each command lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

from layra_migrate.cli import (
    audit_cmd,  # noqa: F401  (registers the command)
    decommission_cmd,  # noqa: F401  (registers the command)
    history_cmd,  # noqa: F401  (registers the command)
    rewrite_cmd,  # noqa: F401  (registers the command)
    verify_cmd,  # noqa: F401  (registers the command)
)
from layra_migrate.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
