"""Rich rendering for rewrite, rollback, status, check and unlock; and the progress adapter."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rich.table import Table
from rich.text import Text

from layra_migrate.render import Output
from layra_migrate.views.progress import RichProgress  # noqa: F401 - moved there; kept importable


def took_over_line(held: Any) -> str:
    if held.stale_reason:
        return (
            f"took over the lock of a run that is gone ({held.stale_reason}): "
            f"{held.holder} pid {held.pid} ({held.command}); its journal is settled first"
        )
    return f"took over an expired lock from {held.describe()}"


def _v(value: Any) -> str:
    return "null" if value is None else repr(value) if not isinstance(value, str) else f"'{value}'"


def render_preflight(pre: Any, plan: Any, out: Output, plan_path: str) -> None:
    c = out.out
    c.print(
        Text.assemble(
            ("Plan ", "bold"),
            plan_path,
            ("  database ", "bold"),
            (pre.report.database, "bold cyan"),
        )
    )
    t = Table(title="Proxied references to rewrite", title_justify="left")
    t.add_column("model name")
    t.add_column("refs", justify="right")
    t.add_column("target")
    for name, n in sorted(pre.to_write.items(), key=lambda kv: -kv[1]):
        tgt = plan.target(name)
        where = f"{tgt.provider}  {tgt.base_url}  {tgt.model}" if tgt else ""
        if tgt and tgt.api_key_env:
            where += f"  key ${tgt.api_key_env}"
        t.add_row(name, str(n), where)
    for b in pre.skipped:
        t.add_row(
            Text(str(b.model_name), style="yellow"),
            str(b.references),
            Text(f"left on the proxy ({b.kind}): {b.reason}", style="yellow"),
        )
    out.table(t)


def render_changes(changes: list[Any], out: Output) -> None:
    c = out.out
    grouped: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for ch in changes:
        grouped[ch.label.get("location", ch.collection)][ch.label.get("model", "")].append(ch)
    for location in sorted(grouped):
        n = sum(len(v) for v in grouped[location].values())
        c.print(Text.assemble(("\n", ""), (location, "bold"), f"  ({n} field change(s))"))
        for model in sorted(grouped[location]):
            c.print(Text.assemble(("  model ", "dim"), (model or "-", "cyan")))
            last_doc = None
            for ch in grouped[location][model]:
                if ch.doc_id != last_doc:
                    c.print(Text(f"    {ch.collection} _id={ch.doc_id}", style="dim"))
                    last_doc = ch.doc_id
                c.print(
                    Text.assemble(
                        f"      {ch.path}: ",
                        (_v(ch.before), "red"),
                        " -> ",
                        (_v(ch.after), "green"),
                    )
                )


def render_apply(result: Any, out: Output) -> None:
    c = out.out
    if result.accepted:
        c.print(
            f"[yellow]accepted changed file(s):[/] {', '.join(result.accepted)} "
            "(recorded in the ledger)"
        )
    if result.took_over is not None:
        out.warn(took_over_line(result.took_over))
    t = Table(
        title="Migrations" + (" (dry run: nothing written)" if result.dry_run else ""),
        title_justify="left",
    )
    t.add_column("migration")
    t.add_column("status")
    t.add_column("documents", justify="right")
    t.add_column("fields", justify="right")
    t.add_column("time", justify="right")
    for m in result.migrations:
        style = {"applied": "green", "would_apply": "yellow"}.get(m.status, "dim")
        status = m.status + (" (resumed)" if m.resumed else "")
        t.add_row(
            m.id,
            Text(status, style=style),
            str(m.documents),
            str(m.fields),
            f"{m.duration_s:.1f}s" if m.duration_s else "",
        )
    if result.migrations:
        out.table(t)
    else:
        c.print("[green]Nothing to apply: every migration is applied.[/]")
    if any(m.skipped for m in result.migrations):
        out.warn(
            f"{sum(m.skipped for m in result.migrations)} document(s) changed while "
            "migrating were left alone; re-run rewrite to migrate them"
        )
    if any(m.recovered for m in result.migrations):
        c.print(
            f"recovered {sum(m.recovered for m in result.migrations)} journal entries "
            "from an interrupted run"
        )


def render_cache(cache: Any, keys: int, out: Output, dry_run: bool) -> None:
    if dry_run:
        if keys:
            out.out.print(f"Redis: {keys} cached model config key(s) would be deleted")
        return
    if cache is None:
        if keys:
            out.warn(
                f"no --redis-url: {keys} cached model config(s) in Redis may serve the old "
                "URL for up to 15 minutes (conv_model_config:*, model_config:*)"
            )
        return
    if not cache.failed:
        # Keys expire after 15 minutes: a key not found was simply not cached (not a failure).
        out.out.print(
            f"Redis: {cache.deleted} cached key(s) deleted, "
            f"{cache.requested - cache.deleted} were not cached"
        )


def render_rollback(result: Any, out: Output) -> None:
    c = out.out
    if result.took_over is not None:
        out.warn(took_over_line(result.took_over))
    if not result.migrations:
        c.print("[green]Nothing to roll back.[/]")
        return
    if result.dry_run and result.restores:
        c.print(Text("Would restore (dry run: nothing written):", style="bold"))
        last = None
        for r in result.restores:
            if (r.collection, r.doc_id) != last:
                c.print(Text(f"  {r.collection} _id={r.doc_id}", style="dim"))
                last = (r.collection, r.doc_id)
            c.print(
                Text.assemble(
                    f"    {r.path}: ", (_v(r.now), "red"), " -> ", (_v(r.restored), "green")
                )
            )
    t = Table(title="Rollback" + (" (dry run)" if result.dry_run else ""), title_justify="left")
    t.add_column("migration")
    t.add_column("status")
    t.add_column("restored", justify="right")
    t.add_column("already", justify="right")
    t.add_column("conflicts", justify="right")
    t.add_column("forced", justify="right")
    for m in result.migrations:
        s = result.stats[m.id]
        style = "green" if m.status == "rolled_back" else "red" if s.conflicts else "yellow"
        t.add_row(
            m.id,
            Text(m.status, style=style),
            str(s.restored),
            str(s.already),
            str(s.conflicts),
            str(s.forced),
        )
    out.table(t)
    if result.conflicts:
        ct = Table(title="Conflicts: changed since the migration, left alone", title_justify="left")
        ct.add_column("collection")
        ct.add_column("_id")
        ct.add_column("reason")
        ct.add_column("migrated fields")
        for cf in result.conflicts[:200]:
            ct.add_row(cf.collection, str(cf.doc_id), cf.reason, ", ".join(cf.fields))
        out.table(ct)


def _docs(counts: dict[str, Any]) -> Any:
    """Documents a run changed: written by an up run, restored by a rollback."""
    return counts.get("documents", counts.get("restored", ""))


def render_status(report: Any, out: Output) -> None:
    c = out.out
    t = Table(title=f"Migrations in {report.database}", title_justify="left")
    for col in ("migration", "state", "when (UTC)", "by", "took", "docs", "checksum"):
        t.add_column(
            col,
            justify="right" if col in ("took", "docs") else "left",
            no_wrap=col in ("migration", "state", "when (UTC)"),
        )
    for r in report.migrations:
        run = r.last_run or r.applied or {}  # the latest run: after a rollback, the rollback
        style = {
            "applied": "green",
            "pending": "yellow",
            "partially_rolled_back": "red",
            "interrupted": "red",
            "rollback_interrupted": "red",
        }.get(r.state, "")
        checksum = (r.file_checksum or "")[:8]
        if r.changed:
            checksum = Text(
                f"{checksum} (CHANGED, was {(r.recorded_checksum or '')[:8]})", style="red"
            )
        when = run.get("finished_at") or run.get("started_at")
        t.add_row(
            r.id,
            Text(r.state, style=style),
            f"{when:%Y-%m-%d %H:%M}" if when else "",
            run.get("by", ""),
            f"{run['duration_s']:.1f}s" if run.get("duration_s") else "",
            str(_docs(run.get("counts") or {})),
            checksum,
        )
    out.table(t)
    if report.lock:
        style = "yellow" if report.lock.expired() else "bold"
        c.print(Text.assemble(("lock: ", "bold"), (report.lock.describe(), style)))
    else:
        c.print("lock: free")
    if report.journal:
        c.print("journal: " + ", ".join(f"{k} {v}" for k, v in sorted(report.journal.items())))


def render_check(result: Any, out: Output) -> None:
    c = out.out
    c.print(
        f"scratch database {result.scratch_db}: {result.copied} document(s) copied, "
        f"original content hash {result.original[:16]}"
    )
    t = Table(title="Reversibility check", title_justify="left")
    t.add_column("step")
    t.add_column("result")
    t.add_column("documents", justify="right")
    t.add_column("detail")
    for s in result.steps:
        t.add_row(
            s.name,
            Text("ok", style="green") if s.ok else Text("FAILED", style="red"),
            str(s.documents),
            s.detail,
        )
    out.table(t)
    if result.ok:
        c.print("[green]reversible: down restored the exact original, up is idempotent[/]")
    else:
        c.print(f"[red]not reversible[/]: first differing document {result.first_difference}")
