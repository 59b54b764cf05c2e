"""Rich rendering of a VerifyReport: a table, then the details of every failure."""

from __future__ import annotations

from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from layra_migrate.render import Output
from layra_migrate.verify import OK, SKIPPED, ProbeResult, VerifyReport

_STYLE = {OK: "green", SKIPPED: "yellow"}
_WIDE = 140  # narrower terminals get one block per target instead of a table


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
        text += (f" [shape {t.shape_index}/{len(t.shapes)}, {shape.references} ref(s): "
                 f"{shape.params.describe()}]")
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
    c.print(Text.assemble(("Verify targets from ", "bold"), (source, "bold cyan"),
                          (f"  (database {report.database}, timeout {report.timeout_s:g}s, "
                           f"concurrency {report.concurrency})", "")))
    if c.width < _WIDE:
        _render_list(report, out)
    else:
        _render_table(report, out)
    if report.not_migrated:
        c.print(f"[yellow]{report.not_migrated} reference(s) still point at the LiteLLM proxy "
                "(not migrated, not probed).[/]")
    if report.record_error:
        out.warn(report.record_error)
    c.print(Text.assemble(
        ("ok: ", "bold"), (str(report.ok), "green"),
        ("   failed: ", "bold"), (str(report.failed), "red" if report.failed else "green"),
        ("   skipped: ", "bold"), (str(report.skipped), "yellow" if report.skipped else ""),
        (f"   in {_ms(report.wall_ms)}", ""),
    ))
    if report.failed:
        out.next_step("fix the failing targets (see the hints), then run verify again")
    elif report.skipped and not allow_skipped:
        out.next_step("skipped targets fail the run: fix them, or accept them with --allow-skipped")
    elif report.source == "plan":
        out.next_step(f"layra-migrate verify --plan {report.plan_path} --against-proxy (while "
                      f"the proxy runs), then layra-migrate rewrite --plan {report.plan_path}")
    elif report.not_migrated:
        out.next_step("layra-migrate audit (some references still use the proxy)")
    else:
        out.next_step("layra-migrate decommission --dry-run")


def _render_list(report: VerifyReport, out: Output) -> None:
    """Narrow terminals: one block per target, every field on its own line."""
    c = out.out
    keyed = _keyed(report)
    if not report.results:
        c.print("[yellow]No target to verify.[/]")
    for r in report.results:
        timing = "" if r.latency_ms is None else f"  {_ms(r.latency_ms)}"
        if r.first_token_ms is not None:
            timing += f", first token {_ms(r.first_token_ms)}"
        c.print(Text.assemble((f"{r.status:<16}", _STYLE.get(r.status, "red")),
                              (r.target.provider, "bold"), "  ", _model(r, id(r) in keyed),
                              f"  refs {r.target.references}{timing}"))
        lines = [r.target.base_url] if r.target.base_url else []
        if r.status != OK and r.detail:
            lines.append(r.detail)
        if r.status not in (OK, SKIPPED) and r.hint:
            lines.append("→ " + r.hint)
        for line in lines:
            c.print(Padding(Text(line), (0, 0, 0, 16)))


def _render_table(report: VerifyReport, out: Output) -> None:
    c = out.out
    keyed = _keyed(report)
    t = Table(title="Provider targets", title_justify="left")
    t.add_column("provider", overflow="fold")
    # URLs and model ids read best unbroken: give them their width first (within reason).
    url_w = min(max((len(r.target.base_url) for r in report.results), default=8), 40)
    model_w = min(max((len(_model(r, id(r) in keyed)) for r in report.results), default=5), 24)
    t.add_column("base URL", overflow="fold", min_width=url_w)
    t.add_column("model", overflow="fold", min_width=model_w)
    t.add_column("refs", justify="right")
    t.add_column("status", no_wrap=True)
    t.add_column("latency", justify="right", no_wrap=True)
    t.add_column("first token", justify="right", no_wrap=True)
    t.add_column("hint", min_width=20)
    for r in report.results:
        hint = r.hint
        if r.status == OK and r.attempts > 1:
            hint = "ok after 1 retry"
        elif r.status == SKIPPED:
            hint = "not probed (see below)"
        # Text(), not str: provider names, URLs and model ids are data, never Rich markup.
        t.add_row(Text(r.target.provider), Text(r.target.base_url or "-"),
                  Text(_model(r, id(r) in keyed)), str(r.target.references),
                  Text(r.status, style=_STYLE.get(r.status, "red")),
                  _ms(r.latency_ms), _ms(r.first_token_ms), Text(hint))
    if not report.results:
        c.print("[yellow]No target to verify.[/]")
    else:
        c.print(t)
    problems = [r for r in report.results if r.status != OK]
    if problems:
        c.print(Text("Details", style="bold"))
        for r in problems:
            model = _model(r, id(r) in keyed)
            where = f"{model} @ {r.target.base_url}" if r.target.base_url else model
            c.print(Text.assemble("  ", (r.status, _STYLE.get(r.status, "red")), f"  {where}: ",
                                  r.detail or "-"), soft_wrap=False)
