"""Rich rendering of a VerifyReport."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from layra_migrate.render import Output
from layra_migrate.verify import OK, SKIPPED, VerifyReport

_STYLE = {OK: "green", SKIPPED: "yellow"}


def _ms(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{value} ms"


def render_verify(report: VerifyReport, out: Output, *, allow_skipped: bool) -> None:
    c = out.out
    source = f"plan {report.plan_path}" if report.source == "plan" else "the database"
    c.print(Text.assemble(("Verify targets from ", "bold"), (source, "bold cyan"),
                          (f"  (database {report.database}, timeout {report.timeout_s:g}s, "
                           f"concurrency {report.concurrency})", "")))
    t = Table(title="Provider targets", title_justify="left")
    t.add_column("provider")
    t.add_column("base URL")
    t.add_column("model")
    t.add_column("refs", justify="right")
    t.add_column("status")
    t.add_column("latency", justify="right")
    t.add_column("first token", justify="right")
    t.add_column("detail / hint")
    for r in report.results:
        status = Text(r.status, style=_STYLE.get(r.status, "red"))
        if r.status == OK:
            note = "after 1 retry" if r.attempts > 1 else ""
            if r.usage:
                note = (note + "; " if note else "") + f"{r.usage.get('total_tokens', '?')} tokens"
        elif r.status == SKIPPED:
            note = r.detail
        else:
            note = r.detail + (f"\n→ {r.hint}" if r.hint else "")
        model = r.target.model
        if r.target.model_names and r.target.model_names != [model]:
            model += "\n(" + ", ".join(r.target.model_names) + ")"
        t.add_row(r.target.provider, r.target.base_url or "-", model or "-",
                  str(r.target.references), status, _ms(r.latency_ms), _ms(r.first_token_ms),
                  note)
    if report.results:
        c.print(t)
    else:
        c.print("[yellow]No target to verify.[/]")
    if report.not_migrated:
        c.print(f"[yellow]{report.not_migrated} reference(s) still point at the LiteLLM proxy "
                "(not migrated, not probed).[/]")
    if report.record_error:
        out.warn(report.record_error)
    summary = Text.assemble(
        ("ok: ", "bold"), (str(report.ok), "green"),
        ("   failed: ", "bold"), (str(report.failed), "red" if report.failed else "green"),
        ("   skipped: ", "bold"), (str(report.skipped), "yellow" if report.skipped else ""),
        (f"   in {_ms(report.wall_ms)}", ""),
    )
    c.print(summary)
    if report.failed:
        out.next_step("fix the failing targets (see the hints), then run verify again")
    elif report.skipped and not allow_skipped:
        out.next_step("skipped targets fail the run: fix them, or accept them with --allow-skipped")
    elif report.source == "plan":
        out.next_step(f"layra-migrate rewrite --plan {report.plan_path}")
    elif report.not_migrated:
        out.next_step("layra-migrate audit (some references still use the proxy)")
    else:
        out.next_step("layra-migrate decommission --dry-run")
