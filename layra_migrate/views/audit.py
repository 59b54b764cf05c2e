"""Rich rendering of an AuditReport."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from layra_migrate.audit import AuditReport
from layra_migrate.render import Output


def render_audit(report: AuditReport, out: Output, plan_path: str | None) -> None:
    c = out.out
    c.print(Text.assemble(("Audit of database ", "bold"), (report.database, "bold cyan")))
    c.print("Proxy URLs (normalised, with or without /v1): " + ", ".join(report.proxy.urls))
    if report.config_path:
        c.print(f"LiteLLM config: {report.config_path}")

    t = Table(title="Model configurations by location", title_justify="left")
    t.add_column("location")
    t.add_column("documents", justify="right")
    t.add_column("references", justify="right")
    t.add_column("via proxy", justify="right")
    for name, counts in report.locations.items():
        t.add_row(
            name,
            str(counts.documents),
            str(counts.references),
            Text(str(counts.via_proxy), style="yellow" if counts.via_proxy else ""),
        )
    out.table(t)

    if report.proxy_url_spellings:
        s = Table(title="Proxy URL spellings found", title_justify="left")
        s.add_column("stored URL")
        s.add_column("references", justify="right")
        for url, n in sorted(report.proxy_url_spellings.items(), key=lambda kv: -kv[1]):
            s.add_row(url, str(n))
        out.table(s)

    m = Table(title="Proxied model names and their direct targets", title_justify="left")
    m.add_column("model name", overflow="fold")
    m.add_column("refs", justify="right")
    m.add_column("users", justify="right")
    m.add_column("where (mc/conv/wf/nodes)")
    m.add_column("status")
    m.add_column("direct target, or why none", overflow="fold")
    for model in report.models:
        r = model.resolution_dict()
        where = "/".join(str(model.by_location.get(k, 0)) for k in report.locations)
        if r["status"] == "resolved":
            ok = not model.blocking
            status = Text("resolved" if ok else "key missing", style="green" if ok else "red")
            detail = (
                f"{r['provider']}: {r['model']} at {r['base_url']}\n"
                f"key ${r['api_key_env']} {'set' if r['api_key_present'] else 'NOT set'}"
            )
            sources = r.get("sources") or {}
            if sources.get("base_url"):
                detail += f"\nbase: {sources['base_url']}"
            if sources.get("api_key_env"):
                detail += f"\nkey: {sources['api_key_env']}"
        else:
            status = Text("unresolved", style="red")
            detail = r["reason"] or ""
            for choice in r.get("choices", []):
                detail += (
                    f"\n  choice: {choice['provider']}: {choice['model']} at {choice['base_url']}"
                )
        cell = Text(detail)
        lost_kinds = [b["kind"] for b in r.get("lost_behaviours") or []]
        if lost_kinds:
            cell.append("\nlost: ", style="yellow")
            cell.append(", ".join(lost_kinds))
        m.add_row(model.model_name, str(model.via_proxy), str(model.users), where, status, cell)
    if report.models:
        out.table(m)
    else:
        c.print("[green]No model configuration points at the proxy.[/]")

    _render_lost(report, out)

    if report.anomalies:
        a = Table(title="Anomalies (reported, never changed silently)", title_justify="left")
        a.add_column("kind")
        a.add_column("location")
        a.add_column("count", justify="right")
        a.add_column("meaning")
        for an in report.anomalies:
            detail = an.detail
            if an.paths:  # where they are: never silently missed
                detail += "".join(f"\n  {p}" for p in an.paths[:10])
                if len(an.paths) > 10:
                    detail += f"\n  ... {len(an.paths) - 10} more (--json lists them)"
            a.add_row(an.kind, an.location, str(an.count), detail)
        out.table(a)
    dups = [d for d in report.duplicates if d.resolution == "blocking"]
    if dups:
        d = Table(
            title="Renames that would give a user two models with one name (blocking)",
            title_justify="left",
        )
        for col in ("user", "proxied name", "new name", "model_id", "same name as model_id"):
            d.add_column(col)
        for x in dups:
            d.add_row(
                str(x.user),
                x.model_name,
                x.new_name,
                str(x.model_id),
                ", ".join(str(i) for i in x.other_ids),
            )
        out.table(d)
        c.print(
            "  resolve in the plan per name: allow_duplicate_name: true, or "
            "keep: [MODEL_ID] (left on the proxy); --skip-unresolved leaves them too"
        )
    for note in report.config_notes:
        c.print(f"[yellow]note:[/] {note}")

    blocking = report.blocking
    c.print(
        Text.assemble(
            ("via proxy: ", "bold"),
            str(report.via_proxy),
            ("   blocking: ", "bold"),
            (str(blocking), "red" if blocking else "green"),
        )
    )
    if plan_path:
        c.print(f"Plan written to {plan_path}")
    if report.via_proxy == 0:
        out.next_step("layra-migrate decommission --dry-run")
    elif plan_path and blocking:
        out.next_step(
            f"edit {plan_path} to resolve the blocking names (or export the missing keys), "
            f"then layra-migrate verify --plan {plan_path}"
        )
    elif plan_path:
        out.next_step(f"layra-migrate verify --plan {plan_path}")
    else:
        out.next_step("layra-migrate audit --litellm-config config.yaml --plan-out plan.yaml")


def _render_lost(report: AuditReport, out: Output) -> None:
    """Each lost proxy behaviour once: what it was, what changes, which names it touches."""
    rows: dict[tuple[str, str, str], list[str]] = {}
    for model in report.models:
        r = model.resolution
        for b in r.lost_behaviours if r else []:
            rows.setdefault((b.kind, b.detail, b.impact), []).append(model.model_name)
    if not rows:
        return
    t = Table(
        title="What the proxy did that direct calls will not (lost per model)",
        title_justify="left",
    )
    t.add_column("kind")
    t.add_column("setting", overflow="fold")
    t.add_column("what changes for users", overflow="fold")
    t.add_column("model names", overflow="fold")
    for (kind, detail, impact), names in rows.items():
        t.add_row(kind, detail, impact, ", ".join(names))
    out.table(t)
