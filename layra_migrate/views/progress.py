"""How progress is shown: the display side of :mod:`layra_migrate.progress`.

- on a terminal: a Rich progress bar on stderr with the rate and an ETA;
- otherwise (a pipe, a CI log): one plain line on stderr per running task every
  ``LAYRA_MIGRATE_PROGRESS_INTERVAL`` seconds (default 5), e.g.
  ``progress: model_config 1,200/5,000 (24%) 800/s, ETA 5s``, and a last line when a
  task that was reported finishes;
- with ``--json``: nothing (stdout stays one JSON object, stderr stays quiet).
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import IO, Any

from layra_migrate.progress import Progress
from layra_migrate.render import Output

INTERVAL_ENV = "LAYRA_MIGRATE_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 5.0


def interval_from_env(value: str | None) -> float:
    """The periodic line's interval in seconds (a bad or non-positive value: the default)."""
    try:
        seconds = float(value) if value else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S
    return seconds if seconds > 0 else DEFAULT_INTERVAL_S


def progress_display(output: Output) -> AbstractContextManager[Progress | None]:
    """The progress sink for one command run on ``output``."""
    if output.json_mode:
        return nullcontext(None)
    if output.err.is_terminal:
        return RichProgress(output)
    return LineProgress(output.err.file, interval_from_env(os.environ.get(INTERVAL_ENV)))


class RichProgress:
    """The Progress protocol on a Rich progress bar (stderr), with rate and ETA."""

    def __init__(self, output: Output) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichBar

        self._progress = RichBar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=output.err,
            disable=output.json_mode or not output.err.is_terminal,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)

    def start(self, task: str, total: int | None) -> None:
        if task not in self._tasks:
            self._tasks[task] = self._progress.add_task(task, total=total, rate="")
        else:
            self._progress.reset(self._tasks[task], total=total)

    def advance(self, task: str, n: int = 1) -> None:
        tid = self._tasks.get(task)
        if tid is None:
            return
        speed = self._progress.tasks[tid].speed if tid < len(self._progress.tasks) else None
        self._progress.update(tid, advance=n, rate=f"{speed:,.0f}/s" if speed else "")

    def finish(self, task: str) -> None:
        tid = self._tasks.get(task)
        if tid is not None:
            t = self._progress.tasks[tid]
            self._progress.update(tid, total=t.completed)


@dataclass
class _Task:
    total: int | None
    started: float
    done: int = 0
    reported: bool = False
    finished: bool = False


@dataclass
class LineProgress:
    """The Progress protocol as periodic plain lines (no terminal: pipes, CI logs).

    A background thread writes one line per running task every ``interval_s``; a task
    shorter than the interval prints nothing. Thread-safe: the engine reports from the
    event loop, the decommission's archive from its worker.
    """

    stream: IO[str]
    interval_s: float = DEFAULT_INTERVAL_S
    _tasks: dict[str, _Task] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> LineProgress:
        self._thread = threading.Thread(target=self._tick, name="progress-lines", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def start(self, task: str, total: int | None) -> None:
        with self._lock:
            self._tasks[task] = _Task(total, time.monotonic())

    def advance(self, task: str, n: int = 1) -> None:
        with self._lock:
            t = self._tasks.get(task)
            if t is not None:
                t.done += n

    def finish(self, task: str) -> None:
        with self._lock:
            t = self._tasks.get(task)
            if t is None or t.finished:
                return
            t.finished = True
            line = self._line(task, t, final=True) if t.reported else None
        if line:
            self._write(line)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                lines = []
                for name, t in self._tasks.items():
                    if not t.finished:
                        t.reported = True
                        lines.append(self._line(name, t, final=False))
            for line in lines:
                self._write(line)

    def _write(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # the stream went away (closed pipe): stay quiet
            self._stop.set()

    @staticmethod
    def _line(name: str, t: _Task, *, final: bool) -> str:
        elapsed = max(time.monotonic() - t.started, 1e-9)
        rate = t.done / elapsed
        if final:
            return f"progress: {name} done, {t.done:,} in {_duration(elapsed)}"
        parts = [f"progress: {name} {t.done:,}"]
        if t.total:
            pct = min(100.0, 100.0 * t.done / t.total)
            parts[0] += f"/{t.total:,} ({pct:.0f}%)"
        parts.append(f"{rate:,.0f}/s" if rate >= 1 else "")
        if t.total and rate > 0 and t.done < t.total:
            parts.append(f"ETA {_duration((t.total - t.done) / rate)}")
        elif not t.total or t.done >= t.total:
            parts.append(f"elapsed {_duration(elapsed)}")
        return " ".join(p for p in parts if p)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"
