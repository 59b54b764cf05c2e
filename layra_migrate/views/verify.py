"""Rich rendering of a VerifyReport: a table, then the details of every failure."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from layra_migrate.render import Output
from layra_migrate.verify import OK, SKIPPED, ProbeResult, VerifyReport

_STYLE = {OK: "green", SKIPPED: "yellow"}


def _ms(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.1f}s" if value >= 1000 else f"{value} ms"


def _model(r: ProbeResult, keyed: bool = False) -> str:
    model = r.target.model or "-"
    names = [n for n in r.target.model_names if n != model]
    text = model + (f" ({', '.join(names)})" if names else "")
    if keyed and r.target.key_label:
        text += f" [key {r.target.key_label}]"
    t = r.target
    if len(t.shapes) > 1:  # one row per distinct parameter shape the references send
        shape = t.shapes[t.shape_index - 1]
        text += (
            f" [shape {t.shape_index}/{len(t.shapes)}, {shape.references} ref(s): "
            f"{shape.params.describe()}]"
        )
    return text


def _keyed(report: VerifyReport) -> set[int]:
    """Results whose (base URL, model) repeats: only their (masked) key tells them apart."""
    seen: dict[tuple[str, str, int], int] = {}

    def ident(r: ProbeResult) -> tuple[str, str, int]:
        return r.target.base_url, r.target.model, r.target.shape_index

    for r in report.results:
        seen[ident(r)] = seen.get(ident(r), 0) + 1
    return {id(r) for r in report.results if seen[ident(r)] > 1}


def render_verify(report: VerifyReport, out: Output, *, allow_skipped: bool) -> None:
    c = out.out
    source = f"plan {report.plan_path}" if report.source == "plan" else "the database"
    c.print(
        Text.assemble(
            ("Verify targets from ", "bold"),
            (source, "bold cyan"),
            (
                f"  (database {report.database}, timeout {report.timeout_s:g}s, "
                f"concurrency {report.concurrency})",
                "",
            ),
        )
    )
    _render_table(report, out)  # a table when it fits whole, else one block per target
    if report.not_migrated:
        c.print(
            f"[yellow]{report.not_migrated} reference(s) still point at the LiteLLM proxy "
            "(not migrated, not probed).[/]"
        )
    if report.record_error:
        out.warn(report.record_error)
    c.print(
        Text.assemble(
            ("ok: ", "bold"),
            (str(report.ok), "green"),
            ("   failed: ", "bold"),
            (str(report.failed), "red" if report.failed else "green"),
            ("   skipped: ", "bold"),
            (str(report.skipped), "yellow" if report.skipped else ""),
            (f"   in {_ms(report.wall_ms)}", ""),
        )
    )
    if report.failed:
        out.next_step("fix the failing targets (see the hints), then run verify again")
    elif report.skipped and not allow_skipped:
        out.next_step("skipped targets fail the run: fix them, or accept them with --allow-skipped")
    elif report.source == "plan":
        out.next_step(
            f"layra-migrate verify --plan {report.plan_path} --against-proxy (while "
            f"the proxy runs), then layra-migrate rewrite --plan {report.plan_path}"
        )
    elif report.not_migrated:
        out.next_step("layra-migrate audit (some references still use the proxy)")
    else:
        out.next_step("layra-migrate decommission --dry-run")


def _render_table(report: VerifyReport, out: Output) -> None:
    c = out.out
    keyed = _keyed(report)
    t = Table(title="Provider targets", title_justify="left")
    # Identifiers (URLs, model ids) are never broken: out.table() prints blocks when
    # the table cannot hold them whole.
    t.add_column("provider")
    t.add_column("base URL")
    t.add_column("model")
    t.add_column("refs", justify="right")
    t.add_column("status", no_wrap=True)
    t.add_column("latency", justify="right", no_wrap=True)
    t.add_column("first token", justify="right", no_wrap=True)
    t.add_column("hint")
    for r in report.results:
        hint = r.hint
        if r.status == OK and r.attempts > 1:
            hint = "ok after 1 retry"
        elif r.status == SKIPPED:
            hint = "not probed (see below)"
        # Text(), not str: provider names, URLs and model ids are data, never Rich markup.
        t.add_row(
            Text(r.target.provider),
            Text(r.target.base_url or "-"),
            Text(_model(r, id(r) in keyed)),
            str(r.target.references),
            Text(r.status, style=_STYLE.get(r.status, "red")),
            _ms(r.latency_ms),
            _ms(r.first_token_ms),
            Text(hint),
        )
    if not report.results:
        c.print("[yellow]No target to verify.[/]")
    else:
        out.table(t)
    problems = [r for r in report.results if r.status != OK]
    if problems:
        c.print(Text("Details", style="bold"))
        for r in problems:
            model = _model(r, id(r) in keyed)
            where = f"{model} @ {r.target.base_url}" if r.target.base_url else model
            c.print(
                Text.assemble(
                    "  ", (r.status, _STYLE.get(r.status, "red")), f"  {where}: ", r.detail or "-"
                )
            )
