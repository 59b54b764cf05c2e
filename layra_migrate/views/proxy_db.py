"""Rich rendering of the models stored in the proxy's database."""

from __future__ import annotations

from rich.table import Table

from layra_migrate.litellm.proxy_db import TABLE, ProxyDbModels
from layra_migrate.render import Output


def render_proxy_db(found: ProxyDbModels, out: Output) -> None:
    c = out.out
    if found.status == "not_checked":
        return
    if not found.read:
        c.print(f"Proxy database: {found.detail}")
        return
    t = Table(
        title=f"Models stored in the proxy database ({TABLE} in {found.container}, "
        f"found by {found.found_by})",
        title_justify="left",
    )
    t.add_column("model name")
    t.add_column("litellm_params keys (values never shown)")
    t.add_column("blocked")
    t.add_column("added")
    for m in found.models:
        t.add_row(
            m.model_name,
            ", ".join(m.param_keys),
            "yes" if m.blocked else "no",
            f"{m.created_at or '?'} by {m.created_by or '?'}",
        )
    if found.models:
        out.table(t)  # names whole: blocks when the table cannot hold them
    else:
        c.print(f"Proxy database: {found.detail}")
