"""Output: Rich for people, one JSON object for machines.

Everything written goes through :func:`layra_migrate.redact.scrub`, so a secret
that slipped into a result object is still masked on the way out. With
``--json`` stdout carries exactly one JSON object; people-facing text,
progress and logs go to stderr.

Data is never hidden or mangled, whatever the width (one rule for every view):

* the width is the terminal's, or ``COLUMNS`` when set; when the stream is not a
  terminal (a pipe, ``| tee``, a CI log) and ``COLUMNS`` is not set, lines are as
  long as their content (no 80-column fallback, nothing truncated);
* free text wraps between words and never inside one: a URL or path longer than
  the line stays whole on a line of its own (:class:`DataConsole`);
* :meth:`Output.table` prints a table only when every column fits without breaking
  a word (model names, key variables, ids, URLs); otherwise the same rows are
  printed as blocks, one field per line. No cell is ever cut with "…";
* ``NO_COLOR`` turns colour off (Rich honours it); a pipe gets no escape codes.
"""

from __future__ import annotations

import json
import os
import re
import sys
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import IO, TYPE_CHECKING, Any, cast

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from layra_migrate import redact

if TYPE_CHECKING:
    from layra_migrate.progress import Progress

# Not a terminal and no COLUMNS: as wide as the content (Rich would assume 80 and cut).
PLAIN_WIDTH = 4096


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


def console_width(stream: IO[str]) -> int | None:
    """The width to lay out for: ``COLUMNS`` when set, the terminal's (None: Rich asks
    the terminal), or :data:`PLAIN_WIDTH` when the stream is not a terminal."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return None if tty else PLAIN_WIDTH


_WORD = re.compile(r"\S+\s*")


def wrap_words(text: Text, width: int) -> list[Text]:
    """``text`` cut into lines of at most ``width`` cells, between words only: a word
    longer than the line stays whole on a line of its own (never folded, never cut).
    Continuation lines of an indented line hang two columns deeper."""
    out: list[Text] = []
    for line in text.split("\n", allow_blank=True):
        plain = line.plain
        indent = len(plain) - len(plain.lstrip(" "))
        if cell_len(plain) <= width or indent >= width // 2:
            out.append(line)
            continue
        cuts: list[int] = []
        used = indent
        for m in _WORD.finditer(plain, indent):
            word = cell_len(m.group().rstrip())
            if used > indent and used + word > width:
                cuts.append(m.start())
                used = indent + 2 if indent else 0
            used += cell_len(m.group())
        hang = indent + 2 if indent else 0
        for i, piece in enumerate(line.divide(cuts)):
            piece.rstrip()
            out.append(piece if i == 0 else Text(" " * hang) + piece)
    return out


class DataConsole(Console):
    """A Rich console whose free text wraps between words, never inside one.

    A single string or Text printed without ``soft_wrap`` is wrapped by
    :func:`wrap_words`; everything else (tables) is printed as Rich prints it.
    """

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if (
            len(objects) == 1
            and isinstance(objects[0], str | Text)
            and kwargs.get("soft_wrap") is None
            and self.width < PLAIN_WIDTH
        ):
            obj = objects[0]
            text = (
                obj
                if isinstance(obj, Text)
                else self.render_str(obj, markup=kwargs.get("markup"), emoji=kwargs.get("emoji"))
            )
            keep = {k: v for k, v in kwargs.items() if k in ("style", "end")}
            for line in wrap_words(text, self.width):
                super().print(line, soft_wrap=True, **keep)
            return
        if kwargs.get("soft_wrap") is None:
            kwargs["soft_wrap"] = True  # never fold or cut: the terminal wraps
        super().print(*objects, **kwargs)


def make_console(stream: IO[str], *, stderr: bool = False) -> DataConsole:
    """A console on ``stream`` (secrets scrubbed) following the width rule above."""
    return DataConsole(
        file=cast(IO[str], ScrubbingWriter(stream)),
        stderr=stderr,
        highlight=False,
        width=console_width(stream),
    )


def _cell_text(console: Console, cell: RenderableType) -> Text:
    if isinstance(cell, Text):
        return cell
    if isinstance(cell, str):
        return console.render_str(cell)
    return Text(str(cell))


def _fit_widths(console: Console, table: Table) -> list[int] | None:
    """Content widths that fit ``table`` in the console without breaking a word, or None
    when no such widths exist (the caller then prints blocks)."""
    options = console.options
    mins: list[int] = []
    maxs: list[int] = []
    for index, column in enumerate(table.columns):
        pad = table._get_padding_width(index)
        lo = hi = 0
        for cell in [column.header, *column.cells]:
            m = Measurement.get(console, options, _cell_text(console, cell))
            lo, hi = max(lo, m.minimum), max(hi, m.maximum)
        if column.no_wrap:
            lo = hi
        mins.append(lo + pad)
        maxs.append(hi + pad)
    room = console.width - table._extra_width
    if sum(maxs) <= room:
        return [hi - table._get_padding_width(i) for i, hi in enumerate(maxs)]
    if sum(mins) > room:
        return None
    # Give every column its unbreakable minimum, then share what is left by need.
    spare = room - sum(mins)
    need = [hi - lo for lo, hi in zip(mins, maxs, strict=True)]
    total = sum(need) or 1
    widths = [lo + spare * n // total for lo, n in zip(mins, need, strict=True)]
    return [w - table._get_padding_width(i) for i, w in enumerate(widths)]


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` whole: as a table when it fits without breaking a word, else as
    one block per row (first column as the heading, then ``header: value`` lines)."""
    widths = _fit_widths(console, table)
    if widths is not None:
        for column, width in zip(table.columns, widths, strict=True):
            column.width = max(width, 1)
            column.overflow = "fold"  # never "…": the widths above leave every word whole
        console.print(table)
        return
    if table.title:
        title = _cell_text(console, table.title).copy()
        title.stylize("italic")
        console.print(title, soft_wrap=True)
    headers = [_cell_text(console, c.header).plain for c in table.columns]
    columns = [list(c.cells) for c in table.columns]
    for row in range(table.row_count):
        cells = [_cell_text(console, col[row]) if row < len(col) else Text("") for col in columns]
        heading = cells[0].copy()
        heading.stylize("bold")
        console.print(heading)
        for header, cell in zip(headers[1:], cells[1:], strict=True):
            if not cell.plain.strip():
                continue
            lines = cell.split("\n")
            console.print(Text.assemble(f"  {header}: ", lines[0]))
            for more in lines[1:]:
                console.print(Text.assemble("    ", more))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        # Every timestamp carries its zone. PyMongo hands back naive datetimes that are
        # UTC (BSON dates are UTC), and the tool itself works in UTC.
        return (obj if obj.tzinfo is not None else obj.replace(tzinfo=UTC)).isoformat()
    if isinstance(obj, date):
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
        self.err = make_console(sys.stderr, stderr=True)
        # With --json, people-facing text goes to stderr so stdout stays one JSON object.
        self.out = self.err if self.json_mode else make_console(sys.stdout)

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and self.err.is_terminal

    def table(self, table: Table) -> None:
        """Print a result table whole (see :func:`print_table`)."""
        print_table(self.out, table)

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

    def progress(self) -> AbstractContextManager[Progress | None]:
        """Where a command's progress goes (``views/progress.py``): a Rich bar with an ETA
        on a terminal, one periodic line on stderr otherwise, nothing with --json."""
        from layra_migrate.views.progress import progress_display

        return progress_display(self)
