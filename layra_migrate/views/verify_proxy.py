"""Rich rendering of ``verify --against-proxy``: one row per proxied name, then one hint
line per difference."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from layra_migrate.render import Output
from layra_migrate.verify.against_proxy import (
    SAME,
    ProxyComparisonReport,
    ProxyEvidence,
)
from layra_migrate.verify.outcomes import SKIPPED

_STYLE = {SAME: "green", SKIPPED: "yellow"}


def render_comparison(report: ProxyComparisonReport, out: Output, *, allow_skipped: bool) -> None:
    c = out.out
    where = report.proxy_endpoint or "the proxy URL stored in Layra's documents"
    c.print(
        Text.assemble(
            ("Proxy vs direct, plan ", "bold"),
            (str(report.plan_path), "bold cyan"),
            f"  (proxy: {where}, database {report.database}, timeout {report.timeout_s:g}s)",
        )
    )
    if not report.comparisons:
        c.print("[yellow]No proxied model name to compare.[/]")
    else:
        t = Table(title="Proxied names", title_justify="left")
        t.add_column("model name", overflow="fold")
        t.add_column("refs", justify="right")
        t.add_column("proxy used", overflow="fold")
        t.add_column("direct target", overflow="fold")
        t.add_column("status", no_wrap=True)
        for cmp in report.comparisons:
            ev = ProxyEvidence.of(cmp.proxy)
            used = ev.deployment or ev.response_model or "-"
            if ev.api_base:
                used += f" @ {ev.api_base}"
            if cmp.proxy is not None and cmp.proxy.status != "ok":
                used = cmp.proxy.status
            direct = f"{cmp.target.model} @ {cmp.target.base_url}" if cmp.target.base_url else "-"
            # Text(), not str: names, URLs and model ids are data, never Rich markup.
            t.add_row(
                Text(cmp.model_name),
                str(cmp.references),
                Text(used),
                Text(direct),
                Text(cmp.status, style=_STYLE.get(cmp.status, "red")),
            )
        out.table(t)  # whole names and URLs: blocks when the table cannot hold them
    problems = [cmp for cmp in report.comparisons if cmp.status != SAME]
    for cmp in problems:
        c.print(
            Text.assemble(
                "  ",
                (cmp.status, _STYLE.get(cmp.status, "red")),
                f"  {cmp.model_name}: ",
                cmp.detail or "-",
            )
        )
        if cmp.hint:
            c.print(Text("      → " + cmp.hint))
    if report.record_error:
        out.warn(report.record_error)
    c.print(
        Text.assemble(
            ("same: ", "bold"),
            (str(report.same), "green"),
            ("   different: ", "bold"),
            (str(report.different), "red" if report.different else "green"),
            ("   skipped: ", "bold"),
            (str(report.skipped), ""),
        )
    )
    if report.different:
        out.next_step(
            "resolve each difference above (hints), then run verify --against-proxy again"
        )
    elif report.skipped and not allow_skipped:
        out.next_step("skipped names fail the run: fix them, or accept them with --allow-skipped")
    else:
        out.next_step(f"layra-migrate rewrite --plan {report.plan_path}")
