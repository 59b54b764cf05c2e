"""Go / no-go before a rewrite: the audit of the database against the plan.

The plan decides what resolves (the operator may have edited it), so the
audit runs without a LiteLLM config: it only finds which proxied model names
the database holds. Everything that stops a run is collected as a
:class:`Blocking` (a dry run shows them all beside its diff):

- *skippable* (``--skip-unresolved`` leaves them on the proxy and lists them):
  a name without a target, a name whose key variable is not set, a rename that
  would give one user two models with the same ``model_name`` (Layra's UI refuses
  that: ``KnowledgeConfigModalBase.handleCreateConfirm``);
- *not skippable*: a stale plan, a plan written for another database, Redis
  holding Layra's cache in another DB than the one given.

:func:`preflight` raises the refusal (exit 4) unless ``collect=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from layra_migrate.errors import RefusedError
from layra_migrate.names import Duplicate, duplicate_reason
from layra_migrate.plan import KeyValues, check_fresh

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from layra_migrate.audit import AuditReport
    from layra_migrate.plan import Plan
    from layra_migrate.progress import Progress
    from layra_migrate.settings import Environment

UNRESOLVED = "unresolved"
KEY_MISSING = "key_missing"
DUPLICATE_NAME = "duplicate_name"
STALE_PLAN = "stale_plan"
REDIS_WRONG_DB = "redis_wrong_db"
REDIS_UNREACHABLE = "redis_unreachable"
SKIPPABLE = (UNRESOLVED, KEY_MISSING, DUPLICATE_NAME)


@dataclass
class Blocking:
    model_name: str | None
    references: int
    reason: str
    kind: str = UNRESOLVED
    duplicates: list[Duplicate] = field(default_factory=list)

    @property
    def skippable(self) -> bool:
        return self.kind in SKIPPABLE

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": self.kind,
            "model_name": self.model_name,
            "references": self.references,
            "reason": self.reason,
            "skippable": self.skippable,
        }
        if self.duplicates:
            d["duplicates"] = [x.as_dict() for x in self.duplicates]
        return d


@dataclass
class Preflight:
    report: AuditReport
    to_write: dict[str, int]  # resolvable proxied name -> references
    blocking: list[Blocking] = field(default_factory=list)
    keys: KeyValues = field(default_factory=lambda: KeyValues({}))
    placeholder_keys: list[str] = field(default_factory=list)
    plan: Plan | None = None  # what the run writes: blocked names and entries left alone
    skip_unresolved: bool = False
    duplicates: list[Duplicate] = field(default_factory=list)  # every collision, resolved or not

    @property
    def references(self) -> int:
        return sum(self.to_write.values())

    @property
    def refusing(self) -> list[Blocking]:
        """What stops the real run: every blocker, or with --skip-unresolved the ones that
        cannot be skipped."""
        return [b for b in self.blocking if not (self.skip_unresolved and b.skippable)]

    @property
    def skipped(self) -> list[Blocking]:
        """Left on the proxy by --skip-unresolved (listed, not refused)."""
        return [b for b in self.blocking if self.skip_unresolved and b.skippable]

    def add(self, blocking: Blocking) -> None:
        self.blocking.append(blocking)

    def refusal(self) -> RefusedError | None:
        refusing = self.refusing
        if not refusing:
            return None
        hard = [b for b in refusing if not b.skippable]
        if hard:
            return RefusedError(
                hard[0].reason + "; nothing was written", hint=_HINTS.get(hard[0].kind)
            )
        short = {UNRESOLVED: "no target", DUPLICATE_NAME: "duplicate model_name"}
        shown = ", ".join(
            f"{b.model_name} ({b.references}, {short.get(b.kind, b.reason)})" for b in refusing[:12]
        )
        return RefusedError(
            f"{sum(b.references for b in refusing)} proxied reference(s) cannot be "
            f"rewritten: {shown}; nothing was written",
            hint="give them a target (or set the key variable, or resolve the duplicate name "
            "in the plan), or pass --skip-unresolved to leave them pointing at the proxy",
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "via_proxy": self.report.via_proxy,
            "to_rewrite": self.references,
            "models": self.to_write,
            "blocking": [b.as_dict() for b in self.blocking],
            "duplicates": [d.as_dict() for d in self.duplicates],
        }


_HINTS = {
    STALE_PLAN: "run `layra-migrate audit --plan-out` again and review the new plan",
    REDIS_WRONG_DB: "pass --redis-url with the DB that holds them (Layra's cache uses DB 0), "
    "e.g. redis://:PASSWORD@redis:6379/0",
}


async def preflight(
    db: AsyncDatabase[dict[str, Any]],
    plan: Plan,
    env: Environment,
    *,
    skip_unresolved: bool,
    keys_required: bool = True,
    collect: bool = False,
    progress: Progress | None = None,
) -> Preflight:
    """Audit, compare with the plan, read the keys, find duplicate names.

    Raises RefusedError on a no-go unless ``collect`` (the dry run: everything is listed
    and the caller decides). ``keys_required=False`` (the scratch ``check``) stands in a
    fixed placeholder for a missing key instead of blocking: the scratch copy is dropped
    afterwards.
    """
    from layra_migrate import redact
    from layra_migrate.audit import run_audit

    report = await run_audit(db, plan.proxy, None, env, progress=progress)
    result = Preflight(report, {}, skip_unresolved=skip_unresolved)
    try:
        check_fresh(plan, report)
    except RefusedError as exc:
        result.add(Blocking(None, 0, exc.message, STALE_PLAN))
    values: dict[str, str] = {}
    blocked: set[str] = set()
    for m in report.models:
        target = plan.target(m.model_name)
        if target is None:
            entry = plan.entries.get(m.model_name)
            reason = entry.reason if entry and entry.reason else "the plan has no target"
            result.add(Blocking(m.model_name, m.via_proxy, reason, UNRESOLVED))
            blocked.add(m.model_name)
            continue
        var = target.api_key_env
        value = env.get(var) if var else None
        if var and not value:
            if target.key_required and keys_required:
                result.add(
                    Blocking(
                        m.model_name, m.via_proxy, f"key variable {var} is not set", KEY_MISSING
                    )
                )
                blocked.add(m.model_name)
                continue
            if target.key_required:
                value = f"check-placeholder-{var}"
                if var not in result.placeholder_keys:
                    result.placeholder_keys.append(var)
        if var and value:
            values[var] = value
        result.to_write[m.model_name] = m.via_proxy
    redact.register_secrets(values.values())
    result.keys = KeyValues(values)
    from layra_migrate.names import find_duplicates

    candidate = plan.without(blocked, set())
    result.duplicates, held = await find_duplicates(db, candidate)
    by_name: dict[str, Blocking] = {}
    for d in result.duplicates:
        if d.resolution != "blocking":
            continue
        b = by_name.get(d.model_name)
        if b is None:
            b = by_name[d.model_name] = Blocking(d.model_name, 0, "", DUPLICATE_NAME)
            result.add(b)
        b.references += 1
        b.duplicates.append(d)
    for b in by_name.values():
        b.reason = duplicate_reason(b.duplicates)
    for d in result.duplicates:  # held-back entries are not written
        if d.resolution != "allowed" and d.model_name in result.to_write:
            result.to_write[d.model_name] -= 1
    result.plan = plan.without(blocked, held)
    if not collect:
        refusal = result.refusal()
        if refusal is not None:
            raise refusal
    return result
