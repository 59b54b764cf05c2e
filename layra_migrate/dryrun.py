"""The dry run as a plan: what a rewrite would change, and everything that stops it.

Built from the preflight (blockers), the engine's dry-run diff and the Redis check;
rendered by ``views/dryrun.py``; written as JSON with ``--out`` for review in a pull
request. Like ``terraform plan``: a summary first (documents and references to change
per place and per model, cache keys to clear, blockers), then the blockers, then the
diff grouped by model and place. A dry run never refuses: its exit code says what the
real run would do (0 proceed, 4 refused, 3 a dependency is unreachable).
Values are masked already (the engine's :class:`Change` never holds a key).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layra_migrate import redact
from layra_migrate.errors import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, ConfigError

if TYPE_CHECKING:
    from layra_migrate.engine.cache import CacheGate
    from layra_migrate.engine.context import Change
    from layra_migrate.engine.preflight import Blocking, Preflight

SCHEMA = "layra-migrate/rewrite-plan/v1"


@dataclass
class Tally:
    documents: int = 0
    references: int = 0
    fields: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"documents": self.documents, "references": self.references, "fields": self.fields}


def _reference_of(change: Change) -> str:
    """The config object a changed field belongs to (its path without the field)."""
    return change.path.rsplit(".", 1)[0]


@dataclass
class DryRunPlan:
    database: str
    plan_path: str
    skip_unresolved: bool
    changes: list[Change]
    cache_keys: int
    blocking: list[Blocking]
    refusing: list[Blocking]
    skipped: list[Blocking]
    duplicates: list[dict[str, Any]]
    redis: dict[str, Any]
    unrecognised_via_proxy: int
    unreachable: bool = False
    by_place: dict[str, Tally] = field(default_factory=dict)
    by_model: dict[str, Tally] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if self.unreachable:
            return EXIT_UNREACHABLE
        return EXIT_REFUSED if self.refusing else EXIT_OK

    @property
    def proceeds(self) -> bool:
        return self.exit_code == EXIT_OK

    @property
    def documents(self) -> int:
        return sum(t.documents for t in self.by_place.values())

    @property
    def references(self) -> int:
        return sum(t.references for t in self.by_place.values())

    def grouped(self) -> dict[str, dict[str, list[Change]]]:
        """model -> place -> changes, in a stable order."""
        out: dict[str, dict[str, list[Change]]] = {}
        for ch in self.changes:
            model = ch.label.get("model", "") or "-"
            place = ch.label.get("location", ch.collection)
            out.setdefault(model, {}).setdefault(place, []).append(ch)
        return {m: dict(sorted(p.items())) for m, p in sorted(out.items())}

    def summary(self) -> dict[str, Any]:
        return {
            "proceeds": self.proceeds,
            "exit_code": self.exit_code,
            "documents": self.documents,
            "references": self.references,
            "fields": len(self.changes),
            "by_place": {k: v.as_dict() for k, v in sorted(self.by_place.items())},
            "by_model": {k: v.as_dict() for k, v in sorted(self.by_model.items())},
            "cache_keys": self.cache_keys,
            "blockers": len(self.refusing),
            "skipped": len(self.skipped),
            "unrecognised_via_proxy": self.unrecognised_via_proxy,
        }

    def as_json(self, *, full: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "database": self.database,
            "plan": self.plan_path,
            "dry_run": True,
            "skip_unresolved": self.skip_unresolved,
            "summary": self.summary(),
            "blockers": [b.as_dict() for b in self.refusing],
            "skipped": [b.as_dict() for b in self.skipped],
            "duplicates": self.duplicates,
            "redis": self.redis,
        }
        if full:
            out["diff"] = [
                {"model": model, "place": place, "changes": [c.as_dict() for c in changes]}
                for model, places in self.grouped().items()
                for place, changes in places.items()
            ]
        return redact.scrub_obj(out)  # type: ignore[no-any-return]


def build(
    database: str,
    plan_path: str,
    pre: Preflight,
    changes: list[Change],
    cache_keys: int,
    gate: CacheGate | None,
) -> DryRunPlan:
    """Assemble the plan from the preflight, the engine's dry-run diff and Redis."""
    from layra_migrate.engine.preflight import REDIS_UNREACHABLE, REDIS_WRONG_DB, Blocking

    if gate is not None and gate.wrong_db:
        pre.add(Blocking(None, 0, gate.wrong_db, REDIS_WRONG_DB))
    unreachable = gate is not None and gate.unreachable is not None
    if unreachable and gate is not None and gate.unreachable is not None:
        pre.add(Blocking(None, 0, gate.unreachable.message, REDIS_UNREACHABLE))
    plan = DryRunPlan(
        database=database,
        plan_path=plan_path,
        skip_unresolved=pre.skip_unresolved,
        changes=list(changes),
        cache_keys=cache_keys,
        blocking=list(pre.blocking),
        refusing=pre.refusing,
        skipped=pre.skipped,
        duplicates=[d.as_dict() for d in pre.duplicates],
        redis=gate.as_dict() if gate is not None else {"redis_url": None},
        unrecognised_via_proxy=pre.report.unrecognised_via_proxy,
        unreachable=unreachable,
    )
    docs_place: dict[str, set[tuple[str, str]]] = {}
    refs_place: dict[str, set[tuple[str, str, str]]] = {}
    docs_model: dict[str, set[tuple[str, str]]] = {}
    refs_model: dict[str, set[tuple[str, str, str]]] = {}
    for ch in changes:
        place = ch.label.get("location", ch.collection)
        model = ch.label.get("model", "") or "-"
        doc = (ch.collection, str(ch.doc_id))
        ref = (*doc, _reference_of(ch))
        for key, docs, refs, tallies in (
            (place, docs_place, refs_place, plan.by_place),
            (model, docs_model, refs_model, plan.by_model),
        ):
            docs.setdefault(key, set()).add(doc)
            refs.setdefault(key, set()).add(ref)
            tallies.setdefault(key, Tally()).fields += 1
    for key, tally in plan.by_place.items():
        tally.documents, tally.references = len(docs_place[key]), len(refs_place[key])
    for key, tally in plan.by_model.items():
        tally.documents, tally.references = len(docs_model[key]), len(refs_model[key])
    return plan


def write_out(plan: DryRunPlan, path: str | Path) -> Path:
    """The full plan as JSON (masked) for review, e.g. attached to a pull request."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(
            redact.scrub(
                json.dumps(plan.as_json(full=True), indent=2, default=str, sort_keys=False)
            )
            + "\n",
            encoding="utf-8",
        )
    except OSError as exc:
        raise ConfigError(f"cannot write --out: {exc.strerror or exc}", path=str(p)) from None
    return p
