"""Rich rendering of the rewrite dry run (a plan: summary, blockers, diff)."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from layra_migrate.render import Output


def _v(value: Any) -> str:
    return "null" if value is None else repr(value) if not isinstance(value, str) else f"'{value}'"


def render_dry_run(plan: Any, out: Output, *, summary_only: bool = False) -> None:
    c = out.out
    c.print(
        Text.assemble(
            ("Rewrite plan", "bold"),
            " for database ",
            (plan.database, "bold cyan"),
            f" (plan {plan.plan_path}): dry run, nothing written",
        )
    )
    c.print(
        f"{plan.documents} document(s), {plan.references} reference(s), "
        f"{len(plan.changes)} field(s) would change; {plan.cache_keys} cached Redis "
        "key(s) would be cleared"
    )
    t = Table(title="Changes by place", title_justify="left")
    for col in ("place", "documents", "references", "fields"):
        t.add_column(col, justify="left" if col == "place" else "right")
    for name, tally in sorted(plan.by_place.items()):
        t.add_row(name, str(tally.documents), str(tally.references), str(tally.fields))
    if plan.by_place:
        out.table(t)
    m = Table(title="Changes by model", title_justify="left")
    for col in ("model", "documents", "references", "fields"):
        m.add_column(col, justify="left" if col == "model" else "right", no_wrap=col != "model")
    for name, tally in sorted(plan.by_model.items()):
        m.add_row(name, str(tally.documents), str(tally.references), str(tally.fields))
    if plan.by_model:
        out.table(m)
    style = "green" if not plan.refusing else "red"
    c.print(
        Text(f"Blockers: {len(plan.refusing)}", style=style)
        + Text(
            f"   left on the proxy by --skip-unresolved: {len(plan.skipped)}"
            if plan.skipped
            else ""
        )
    )
    if plan.unrecognised_via_proxy:
        out.warn(
            f"{plan.unrecognised_via_proxy} unrecognised model configuration(s) point at "
            "the proxy and are never rewritten (see `audit`): decommission will refuse"
        )
    if plan.refusing:
        c.print(Text("\nBlockers (the real run refuses, exit 4):", style="bold red"))
        for b in plan.refusing:
            who = f"{b.model_name} ({b.references}) " if b.model_name else ""
            c.print(Text.assemble("  - ", (f"[{b.kind}] ", "red"), who, b.reason))
    if plan.skipped:
        c.print(Text("\nLeft on the proxy (--skip-unresolved):", style="bold yellow"))
        for b in plan.skipped:
            c.print(
                Text.assemble(
                    "  - ",
                    (f"[{b.kind}] ", "yellow"),
                    f"{b.model_name} ({b.references}) ",
                    b.reason,
                )
            )
    if not summary_only:
        for model, places in plan.grouped().items():
            c.print(Text.assemble(("\nmodel ", "bold"), (model, "bold cyan")))
            for place, changes in places.items():
                c.print(Text(f"  {place} ({len(changes)} field change(s))", style="bold"))
                last = None
                for ch in changes:
                    if (ch.collection, ch.doc_id) != last:
                        c.print(Text(f"    {ch.collection} _id={ch.doc_id}", style="dim"))
                        last = (ch.collection, ch.doc_id)
                    c.print(
                        Text.assemble(
                            f"      {ch.path}: ",
                            (_v(ch.before), "red"),
                            " -> ",
                            (_v(ch.after), "green"),
                        )
                    )
    verdict = {
        0: ("the real run would proceed (exit 0)", "green"),
        3: ("Redis is unreachable: the real run would stop (exit 3)", "red"),
        4: ("the real run would be refused (exit 4)", "red"),
    }[plan.exit_code]
    c.print(Text("\n" + verdict[0], style=verdict[1]))
