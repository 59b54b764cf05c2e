"""What a command asks and tells its caller: the confirmation callback and the hooks."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from layra_migrate.decommission.models import RunResult
from layra_migrate.errors import (
    UsageError,
)

if TYPE_CHECKING:
    from layra_migrate.engine.context import Progress, StopFlag
    from layra_migrate.engine.preflight import Preflight
    from layra_migrate.plan import Plan


# ---------------------------------------------------------------------------------------
# What a command asks and tells its caller


Confirm = Callable[[str, "str | None"], bool]
"""``confirm(question, expected)`` -> proceed? ``expected`` is a word the person must
type (decommission and restore ask for the project name), else ``None`` (yes/no). The
callback may raise (the CLI raises a usage error on a terminal that cannot ask)."""


def assume_yes(question: str, expected: str | None) -> bool:
    """A ``confirm`` callback that always proceeds (the CLI's ``--yes``)."""
    return True


def no_confirmation(question: str, expected: str | None) -> bool:
    """The default ``confirm``: refuse to write without an explicit answer."""
    raise UsageError(
        "refusing to write without confirmation",
        hint="pass confirm=layra_migrate.assume_yes (the CLI's --yes) or a callback that asks",
    )


class Hooks:
    """What a running command tells its caller. Every method does nothing by default.

    The CLI subclasses this to print (``cli/hooks.py``); a Python caller overrides what
    it wants to see.
    """

    def warn(self, text: str) -> None:
        """Something the operator should know; the command goes on."""

    def info(self, text: str) -> None:
        """A line that is not part of the result."""

    def rewrite_preflight(self, pre: Preflight, plan: Plan, plan_path: Path) -> None:
        """``rewrite``: what is about to be written, before the confirmation."""

    def decommission_plan(self, result: RunResult) -> None:
        """``decommission``: the planned steps, before the confirmation."""

    def decommission_step(self, label: str) -> None:
        """``decommission``: a step starts."""

    def writing(self, stop: StopFlag) -> None:
        """The confirmed run starts (rewrite, rollback, check). Setting ``stop`` stops
        it after the current batch; the CLI wires Ctrl-C and SIGTERM to it here."""

    def progress(self) -> AbstractContextManager[Progress | None]:
        """A progress sink for the run (``None``: no progress)."""
        return nullcontext(None)


_QUIET = Hooks()
