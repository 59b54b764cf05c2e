"""Output: Rich for people, one JSON object for machines.

Everything written goes through :func:`layra_migrate.redact.scrub`, so a secret
that slipped into a result object is still masked on the way out. With
``--json`` stdout carries exactly one JSON object; people-facing text,
progress and logs go to stderr.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, Any, cast

from rich.console import Console

from layra_migrate import redact


class ScrubbingWriter:
    """A text stream that masks secrets in everything written through it."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact.scrub(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self._stream, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", "utf-8") or "utf-8"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if hasattr(obj, "as_dict"):
        return obj.as_dict()
    return str(obj)


def dumps(obj: Any) -> str:
    return json.dumps(redact.scrub_obj(obj), default=_json_default, ensure_ascii=False)


@dataclass
class Output:
    """Where a command writes. Built once per command by the CLI layer."""

    json_mode: bool = False
    verbose: bool = False
    debug: bool = False
    out: Console = field(init=False)
    err: Console = field(init=False)

    def __post_init__(self) -> None:
        self.err = Console(
            file=cast(IO[str], ScrubbingWriter(sys.stderr)), stderr=True, highlight=False
        )
        # With --json, people-facing text goes to stderr so stdout stays one JSON object.
        self.out = (
            self.err
            if self.json_mode
            else Console(file=cast(IO[str], ScrubbingWriter(sys.stdout)), highlight=False)
        )

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and self.err.is_terminal

    def emit_json(self, obj: dict[str, Any]) -> None:
        sys.stdout.write(dumps(obj) + "\n")
        sys.stdout.flush()

    def info(self, text: str) -> None:
        """A people-facing line that is not the result (stderr when --json)."""
        if not self.json_mode:
            self.out.print(text)
        elif self.verbose:
            self.err.print(text)

    def warn(self, text: str) -> None:
        self.err.print(f"[yellow]warning:[/] {text}")

    def next_step(self, text: str) -> None:
        if not self.json_mode:
            self.out.print(f"\n[bold]next:[/] {text}")

    def progress(self) -> Any:
        """A Rich progress bar on stderr, disabled with --json or when not a terminal."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=self.err,
            disable=self.json_mode or not self.err.is_terminal,
            transient=False,
        )
