"""Rich rendering of decommission and restore results."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from layra_migrate.decommission.archive import human_size
from layra_migrate.decommission.models import RunResult
from layra_migrate.render import Output

_STATUS_STYLE = {"done": "green", "skipped": "yellow", "failed": "red", "pending": "dim"}


def _steps_table(result: RunResult, title: str) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("#", justify="right")
    t.add_column("step")
    t.add_column("status")
    t.add_column("detail / resources")
    for i, s in enumerate(result.steps, 1):
        detail = s.detail or ", ".join(s.resources)
        t.add_row(
            str(i),
            Text(s.name),
            Text(s.status, style=_STATUS_STYLE.get(s.status, "")),
            Text(detail),
        )
    return t


def _containers_table(result: RunResult, *, plan: bool = False) -> Table:
    t = Table(title="Containers", title_justify="left")
    t.add_column("container", overflow="fold")
    t.add_column("role")
    if plan:
        t.add_column("state")
        t.add_column("restart policy")
        t.add_column("why this role", overflow="fold")
    else:
        t.add_column("state before")
        t.add_column("state after")
        t.add_column("restart policy before")
        t.add_column("restart policy after")
    for c in result.containers:
        if plan:
            t.add_row(
                c.name, c.role, c.state_before, c.restart_policy_before, "; ".join(c.evidence)
            )
        else:
            t.add_row(
                c.name,
                c.role,
                c.state_before,
                c.state_after,
                c.restart_policy_before,
                c.restart_policy_after,
            )
    return t


def render_stack(result: RunResult, out: Output) -> None:
    c = out.out
    c.print(
        Text.assemble(
            ("Decommission of compose project ", "bold"),
            (result.project, "bold cyan"),
            (" (dry run: nothing is touched)" if result.dry_run else "", "yellow"),
        )
    )
    out.table(_containers_table(result, plan=True))
    if result.volumes:
        v = Table(title="Volumes", title_justify="left")
        v.add_column("volume")
        v.add_column("mounted by")
        v.add_column("size", justify="right")
        v.add_column("project label")
        for vol in result.volumes:
            v.add_row(
                vol["name"],
                ", ".join(f"{m['container']}:{m['destination']}" for m in vol["mounted_by"]) or "-",
                human_size(vol.get("size")),
                "yes" if "com.docker.compose.project" in vol["labels"] else "no",
            )
        out.table(v)
    if result.networks:
        c.print(
            Text(
                "Networks: "
                + ", ".join(
                    n["name"]
                    + ("" if n["project_labelled"] else " (not the project's: never removed)")
                    for n in result.networks
                )
            )
        )
    if result.interlock:
        i = result.interlock
        if not i.checked:
            c.print("[yellow]Interlock: MongoDB references not checked (forced)[/]")
        else:
            c.print(
                f"Interlock: {i.via_proxy} model configuration(s) still point at the proxy"
                + (f" (forced: {i.reason})" if i.forced and i.via_proxy else "")
            )
        pc = i.proxy_comparison
        if pc is not None:
            counts = ", ".join(f"{k} {v}" for k, v in pc["counts"].items() if v) or "no names"
            c.print(
                Text(
                    f"Proxy vs direct (verify --against-proxy, {pc['at']}): {counts}"
                    + ("" if pc["passed"] else f"; not the same: {', '.join(pc['different'])}")
                )
            )
    c.print(f"Archive: {result.archive}  (estimated size {human_size(result.estimated_size)})")


def render_plan(result: RunResult, out: Output) -> None:
    render_stack(result, out)
    out.table(_steps_table(result, "Plan"))
    for w in result.warnings:
        out.warn(w)
    # The rotation checklist comes with the result (it grows with the archived .env).
    _render_security(result, out, checklist=result.dry_run)


def render_result(result: RunResult, out: Output) -> None:
    c = out.out
    out.table(_steps_table(result, "Steps"))
    out.table(_containers_table(result))
    if result.archive:
        state = (
            Text("verified", style="green")
            if result.archive_verified
            else Text("INCOMPLETE (kept for inspection)", style="red")
        )
        c.print(
            Text.assemble(
                "Archive: ", result.archive, " (", state, "; holds secrets: mode 0700/0600)"
            )
        )
    _render_security(result, out)
    if result.error:
        pass  # the CLI prints it on stderr, once
    elif result.archive_verified:
        out.next_step(f"keep the archive safe; to undo: layra-migrate restore {result.archive}")


def _render_security(result: RunResult, out: Output, *, checklist: bool = True) -> None:
    sec = result.security
    if sec is None:
        return
    c = out.out
    style = "bold red" if sec.compromised else ""
    c.print(
        Text.assemble(
            ("Security: ", "bold"),
            (f"proxy image {sec.proxy_image or '?'}; ", ""),
            (sec.detail, style),
        )
    )
    if sec.key_names and checklist:
        c.print("Rotate these keys (the proxy held them; names only):")
        for name in sec.key_names:
            c.print(f"  [ ] {name}")


def render_restore(result: RunResult, out: Output) -> None:
    c = out.out
    c.print(
        Text.assemble(
            ("Restore of compose project ", "bold"),
            (result.project, "bold cyan"),
            f" from {result.archive}",
        )
    )
    out.table(_steps_table(result, "Steps"))
    out.table(_containers_table(result))
    for w in result.warnings:
        out.warn(w)
    if result.error:
        c.print(Text(result.error, style="red"))
    else:
        c.print("[green]The stack is back to its recorded pre-state.[/]")
