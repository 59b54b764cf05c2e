"""Layra's unique-name rule: one user never has two models with the same ``model_name``.

Layra's UI refuses to create a second model with an existing name for a user
(``KnowledgeConfigModalBase.handleCreateConfirm``: ``modelConfigs.some(c => c.modelName
=== newModelName)``, an exact comparison). Rewriting a proxy alias to its upstream id can
create exactly that (a direct ``gpt-4o-mini`` beside a proxied ``openai/gpt-4o-mini``).
Only a *new* duplicate counts: two entries that already shared a name stay as they were.

Per proxied name the plan may allow the duplicate (``allow_duplicate_name: true``) or
name entries to keep as they are (``keep: [model_id, ...]``, left on the proxy); any
other collision blocks like an unresolved name (``--skip-unresolved`` leaves the entry
on the proxy). The audit and the rewrite's preflight both use :func:`find_duplicates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from layra_migrate.plan import Plan
    from layra_migrate.proxy import ProxySet


@dataclass(frozen=True)
class Duplicate:
    """A rename that would give one user two models named ``new_name``."""

    user: str | None
    model_name: str  # the proxied alias being renamed
    new_name: str
    model_id: Any  # the renamed entry
    other_ids: list[Any]  # the entries that hold (or would hold) ``new_name`` too
    path: str
    doc_id: Any
    resolution: str = "blocking"  # blocking | allowed (allow_duplicate_name) | kept (keep)

    def as_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "model_name": self.model_name,
            "new_name": self.new_name,
            "model_id": self.model_id,
            "other_model_ids": list(self.other_ids),
            "path": self.path,
            "resolution": self.resolution,
        }

    def describe(self) -> str:
        others = ", ".join(str(i) for i in self.other_ids)
        return (
            f"user {self.user}: {self.model_name} (model_id {self.model_id}) -> "
            f"{self.new_name}, already the name of model_id {others}"
        )


async def find_duplicates(
    db: AsyncDatabase[dict[str, Any]], plan: Plan
) -> tuple[list[Duplicate], set[tuple[str, str, str]]]:
    """Layra's unique-name rule on each user's list (``model_config.models[]``): find the
    renames that would give one user two models with one ``model_name``. Returns the
    every collision (resolution ``blocking``, ``allowed`` or ``kept``) and the entries to
    leave alone (kept by the plan, or blocking)."""
    from layra_migrate.locations import LOCATIONS, MODEL_CONFIG

    loc = LOCATIONS[MODEL_CONFIG]
    proxy = plan.proxy
    held: set[tuple[str, str, str]] = set()
    found: list[Duplicate] = []
    async for doc in db[loc.collection].find(loc.candidate_filter, loc.projection()):
        _one_user(doc, plan, proxy, found, held)
    return found, held


def duplicate_reason(dups: list[Duplicate]) -> str:
    return (
        f"renaming would give {len({d.user for d in dups})} user(s) two models with the "
        f"same model_name (Layra refuses that): "
        + "; ".join(d.describe() for d in dups[:5])
        + (f"; and {len(dups) - 5} more" if len(dups) > 5 else "")
    )


def _one_user(
    doc: dict[str, Any],
    plan: Plan,
    proxy: ProxySet,
    found: list[Duplicate],
    held: set[tuple[str, str, str]],
) -> None:
    """One user's list: which renames collide, kept / allowed / blocking."""
    from layra_migrate.locations import LOCATIONS, MODEL_CONFIG

    refs = list(LOCATIONS[MODEL_CONFIG].references(doc))
    new_names: list[Any] = []
    for ref in refs:
        target = plan.target(ref.model_name) if proxy.matches(ref.model_url) else None
        new_names.append(
            target.model if target is not None and target.model != ref.model_name else None
        )
    kept: set[int] = set()

    def collisions(i: int) -> list[int]:
        final = [
            r.model_name if (j in kept or new_names[j] is None) else new_names[j]
            for j, r in enumerate(refs)
        ]
        # a new duplicate only: two entries that already shared a name stay as they were
        return [
            j
            for j in range(len(refs))
            if j != i and final[j] == final[i] and refs[j].model_name != refs[i].model_name
        ]

    def dup(i: int, others: list[int], resolution: str) -> Duplicate:
        ref = refs[i]
        return Duplicate(
            doc.get("username"),
            str(ref.model_name),
            str(new_names[i]),
            ref.config.get("model_id"),
            [refs[j].config.get("model_id") for j in others],
            ref.path,
            ref.doc_id,
            resolution,
        )

    # entries the plan keeps first (keeping one can clear another's collision) ...
    changed = True
    while changed:
        changed = False
        for i, ref in enumerate(refs):
            if new_names[i] is None or i in kept:
                continue
            entry = plan.entries[str(ref.model_name)]
            mid = ref.config.get("model_id")
            if (
                not entry.allow_duplicate_name
                and mid is not None
                and str(mid) in entry.keep
                and collisions(i)
            ):
                found.append(dup(i, collisions(i), "kept"))
                kept.add(i)
                held.add((ref.collection, str(ref.doc_id), ref.path))
                changed = True
    # ... then what still collides is allowed by the plan or blocking
    blocking: list[int] = []
    for i, ref in enumerate(refs):
        if new_names[i] is None or i in kept:
            continue
        others = collisions(i)
        if not others:
            continue
        if plan.entries[str(ref.model_name)].allow_duplicate_name:
            found.append(dup(i, others, "allowed"))
            continue
        blocking.append(i)
    for i in blocking:
        held.add((refs[i].collection, str(refs[i].doc_id), refs[i].path))
        found.append(dup(i, collisions(i), "blocking"))
