"""The progress callback protocol core modules report through (no Rich here).

A long step calls ``start(task, total)`` once (``total`` ``None`` when unknown),
``advance(task, n)`` as work is done and ``finish(task)`` at the end. The CLI
renders it (``views/progress.py``): a Rich bar with an ETA on a terminal, a
periodic one-line report on stderr otherwise, nothing with ``--json``. A Python
caller passes its own object or nothing (:class:`NullProgress`).
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, task: str, total: int | None) -> None: ...
    def advance(self, task: str, n: int = 1) -> None: ...
    def finish(self, task: str) -> None: ...


class NullProgress:
    """Progress that goes nowhere (the default)."""

    def start(self, task: str, total: int | None) -> None:
        pass

    def advance(self, task: str, n: int = 1) -> None:
        pass

    def finish(self, task: str) -> None:
        pass
