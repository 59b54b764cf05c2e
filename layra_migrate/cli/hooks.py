"""The CLI's side of a library command: its hooks print, its confirmation asks.

:class:`layra_migrate.commands.Hooks` says what a running command tells its caller;
:class:`CliHooks` renders that on the command's :class:`~layra_migrate.render.Output`
(stderr for progress and warnings; nothing extra on stdout with ``--json``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from layra_migrate.cli.common import confirm
from layra_migrate.commands import Confirm, Hooks, assume_yes

if TYPE_CHECKING:
    from layra_migrate.decommission.models import RunResult
    from layra_migrate.engine.context import Progress, StopFlag
    from layra_migrate.engine.preflight import Preflight
    from layra_migrate.plan import Plan
    from layra_migrate.render import Output


class CliHooks(Hooks):
    def __init__(self, output: Output) -> None:
        self.output = output

    def warn(self, text: str) -> None:
        self.output.warn(text)

    def info(self, text: str) -> None:
        self.output.info(text)

    def rewrite_preflight(self, pre: Preflight, plan: Plan, plan_path: Path) -> None:
        if not self.output.json_mode:
            from layra_migrate.views.rewrite import render_preflight

            render_preflight(pre, plan, self.output, str(plan_path))

    def decommission_plan(self, result: RunResult) -> None:
        if self.output.json_mode:
            for w in result.warnings:
                self.output.warn(w)
        else:
            from layra_migrate.views.decommission import render_plan

            render_plan(result, self.output)

    def decommission_step(self, label: str) -> None:
        if not self.output.json_mode:
            self.output.err.print(f"[dim]-> {label}[/]")

    def writing(self, stop: StopFlag) -> None:
        install_stop(stop, self.output)

    def progress(self) -> AbstractContextManager[Progress | None]:
        return self.output.progress()


def asker(output: Output, *, yes: bool) -> Confirm:
    """The ``confirm`` callback of a command run from the terminal: ``--yes`` proceeds;
    a terminal that cannot ask is a usage error (exit 2); else the question is asked
    (typing the expected word when there is one)."""
    if yes:
        return assume_yes  # recognised by commands that skip the prompt's preview scan

    def ask(question: str, expected: str | None) -> bool:
        confirm(output, question, yes=yes, expected=expected)
        return True

    return ask


def install_stop(stop: StopFlag, output: Output) -> None:
    """First Ctrl-C / SIGTERM: finish the current batch and stop. A second Ctrl-C stops
    at once (still safe: the journal settles an interrupted batch on the next run)."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()

    def request(sig: signal.Signals) -> None:
        stop.set()
        output.warn(f"{sig.name}: stopping after the current batch (again to stop at once)")
        loop.remove_signal_handler(signal.SIGINT)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, request, sig)
        except (NotImplementedError, RuntimeError):
            pass
