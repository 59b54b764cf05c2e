"""Rendering for ``history``: one block per run, newest first; never truncated."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from layra_migrate.history import History, HistoryEntry
from layra_migrate.render import Output

_STYLES = {
    "applied": "green",
    "done": "green",
    "accepted": "yellow",
    "rolled_back": "cyan",
    "partially_rolled_back": "red",
    "interrupted": "red",
    "failed": "red",
    "running": "red",
}


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else "?"


def _took(entry: HistoryEntry) -> str:
    return f"{entry.duration_s:.1f}s" if entry.duration_s is not None else "?"


def _counts(entry: HistoryEntry) -> str:
    c = entry.counts
    if entry.command == "rollback":
        parts = [f"{c.get('restored', 0)} restored"]
        if c.get("conflicts"):
            parts.append(f"{c['conflicts']} conflict(s)")
        if c.get("forced"):
            parts.append(f"{c['forced']} forced")
        return ", ".join(parts)
    if entry.command in ("rewrite", "check"):
        return f"{c.get('documents', 0)} doc(s), {c.get('fields', 0)} field(s)"
    if "containers" in c:
        return f"{c['containers']} container(s)"
    return ""


def render_history(history: History, out: Output) -> None:
    """One block per run, newest first, like ``git log``: complete at any width and in a
    pipe (lines are never cut; a long one wraps)."""
    c = out.out
    if not history.entries:
        c.print(
            f"No recorded run in {history.database}: nothing was rewritten, rolled back "
            "or decommissioned from it."
        )
        return
    c.print(Text(f"History of {history.database} (newest first)", style="bold"))
    for e in history.entries:
        head = Text.assemble(
            "\n",
            (_when(e.started_at), "bold"),
            "  ",
            (e.command, "bold"),
            "  ",
            e.target,
            "  ",
            (e.outcome, _STYLES.get(e.outcome, "")),
        )
        if e.forced:
            head.append("  FORCED", style="red")
        c.print(head, soft_wrap=True)
        detail = f"    by {e.by or '?'}, took {_took(e)}"
        counts = _counts(e)
        if counts:
            detail += f": {counts}"
        c.print(Text(detail), soft_wrap=True)
        if e.reason:
            c.print(Text(f"    reason: {e.reason}"), soft_wrap=True)
        if e.error:
            c.print(Text(f"    error: {e.error}", style="red"), soft_wrap=True)


__all__ = ["render_history"]
