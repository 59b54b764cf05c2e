"""Go / no-go before a rewrite: the audit of the database against the plan.

The plan decides what resolves (the operator may have edited it), so the
audit runs without a LiteLLM config: it only finds which proxied model names
the database holds. Refusals (exit 4, nothing written): a stale plan, blocking
names without ``--skip-unresolved``, a key variable missing for a target that
is about to be written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from layra_migrate.errors import RefusedError
from layra_migrate.plan import KeyValues, check_fresh, resolve_keys

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from layra_migrate.audit import AuditReport
    from layra_migrate.plan import Plan
    from layra_migrate.settings import Environment


@dataclass
class Blocking:
    model_name: str
    references: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "references": self.references,
                "reason": self.reason}


@dataclass
class Preflight:
    report: AuditReport
    to_write: dict[str, int]  # resolvable proxied name -> references
    blocking: list[Blocking] = field(default_factory=list)
    keys: KeyValues = field(default_factory=lambda: KeyValues({}))
    placeholder_keys: list[str] = field(default_factory=list)

    @property
    def references(self) -> int:
        return sum(self.to_write.values())

    def as_dict(self) -> dict[str, Any]:
        return {"via_proxy": self.report.via_proxy, "to_rewrite": self.references,
                "models": self.to_write, "blocking": [b.as_dict() for b in self.blocking]}


async def preflight(db: AsyncDatabase[dict[str, Any]], plan: Plan, env: Environment, *,
                    skip_unresolved: bool, keys_required: bool = True) -> Preflight:
    """Audit, compare with the plan, read the keys. Raises RefusedError on a no-go.

    ``keys_required=False`` (the scratch ``check``) stands in a fixed placeholder for
    a missing key instead of refusing: the scratch copy is dropped afterwards.
    """
    from layra_migrate.audit import run_audit

    report = await run_audit(db, plan.proxy, None, env)
    check_fresh(plan, report)
    result = Preflight(report, {})
    for m in report.models:
        target = plan.target(m.model_name)
        if target is None:
            entry = plan.entries.get(m.model_name)
            reason = (entry.reason if entry and entry.reason else "the plan has no target")
            result.blocking.append(Blocking(m.model_name, m.via_proxy, reason))
        else:
            result.to_write[m.model_name] = m.via_proxy
    if result.blocking and not skip_unresolved:
        shown = ", ".join(f"{b.model_name} ({b.references})" for b in result.blocking[:12])
        raise RefusedError(
            f"{sum(b.references for b in result.blocking)} proxied reference(s) cannot be "
            f"rewritten: {shown}; nothing was written",
            hint="give them a target in the plan, or pass --skip-unresolved to leave them "
                 "pointing at the proxy")
    names = list(result.to_write)
    if keys_required:
        result.keys = resolve_keys(plan, env, names)
    else:
        values: dict[str, str] = {}
        for name in names:
            t = plan.target(name)
            if t is not None and t.api_key_env:
                value = env.get(t.api_key_env)
                if not value:
                    value = f"check-placeholder-{t.api_key_env}"
                    if t.api_key_env not in result.placeholder_keys:
                        result.placeholder_keys.append(t.api_key_env)
                values[t.api_key_env] = value
        from layra_migrate import redact

        redact.register_secrets(values.values())
        result.keys = KeyValues(values)
    return result
