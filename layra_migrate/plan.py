"""The reviewable plan: proxy URLs and, per proxied model name, its direct target.

Written by ``audit --plan-out``, edited by the operator, read by ``rewrite``,
``check`` and ``verify``. It holds key variable *names* only; values are read
from the environment when the plan is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layra_migrate import redact
from layra_migrate.errors import ConfigError, RefusedError
from layra_migrate.litellm.resolve import Target
from layra_migrate.proxy import ProxySet, normalise_url
from layra_migrate.yamlfile import read_yaml

if TYPE_CHECKING:
    from layra_migrate.audit import AuditReport
    from layra_migrate.settings import Environment

PLAN_FORMAT = "layra-migrate/plan/v1"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Local servers such as Ollama accept any key; the SDK still needs a non-empty one.
PLACEHOLDER_KEY = "not-needed"

_HEADER = """\
# layra-migrate plan: review before `layra-migrate rewrite --plan {path}`.
#
# For each model name Layra sends to the proxy, `target` is where it will go directly:
#   provider, base_url (OpenAI-compatible), model (the provider's own id) and
#   api_key_env (the NAME of the environment variable holding the key: values never go here).
# Unresolved names have `target: null` and a `reason`. To migrate one, write a target
# (for a load-balanced group copy one of `choices`). Set `key_required: false` for local
# servers that need no key. Names left unresolved block `rewrite` unless --skip-unresolved.
# `lost_behaviours` lists what the proxy did for a name that direct calls will not
# (fallbacks, limits, retries, drop_params, caching, budgets): informational, never read.
# Layra refuses two models with one model_name for a user: a rename that would create
# that blocks too. Per name, `allow_duplicate_name: true` accepts the duplicate, or
# `keep: [MODEL_ID, ...]` names the user-list entries to keep as they are (on the proxy).
"""


@dataclass
class PlanEntry:
    model_name: str
    target: Target | None
    references: int = 0
    reason: str | None = None
    choices: list[dict[str, Any]] = field(default_factory=list)
    # what the proxy did for this name that direct calls will not (kind, detail, impact)
    lost_behaviours: list[dict[str, str]] = field(default_factory=list)
    allow_duplicate_name: bool = False
    keep: list[str] = field(default_factory=list)  # model_ids left as they are
    duplicates: list[dict[str, Any]] = field(default_factory=list)  # found by the audit


@dataclass
class Plan:
    path: Path | None
    database: str | None
    proxy_urls: list[str]
    entries: dict[str, PlanEntry]
    litellm_config: str | None = None
    # (collection, str(doc_id), config path): references a run leaves alone (a rename
    # that would break Layra's unique-name rule). Set by the preflight, never written.
    held_back: set[tuple[str, str, str]] = field(default_factory=set)

    @property
    def proxy(self) -> ProxySet:
        return ProxySet.build(self.proxy_urls, include_defaults=False)

    def holds_back(self, ref: Any) -> bool:
        """Whether this reference (a :class:`locations.Reference`) is left alone."""
        return (ref.collection, str(ref.doc_id), ref.path) in self.held_back

    def held_back_count(self, collection: str) -> int:
        return sum(1 for h in self.held_back if h[0] == collection)

    def without(self, names: set[str], held_back: set[tuple[str, str, str]]) -> Plan:
        """A copy in which ``names`` have no target and ``held_back`` references are left
        alone: what a run with --skip-unresolved writes."""
        from dataclasses import replace

        entries = {
            n: (replace(e, target=None) if n in names else e) for n, e in self.entries.items()
        }
        return replace(self, entries=entries, held_back=set(self.held_back) | held_back)

    def target(self, name: Any) -> Target | None:
        entry = self.entries.get(str(name)) if name is not None else None
        return entry.target if entry else None

    def resolved_names(self) -> list[str]:
        return [n for n, e in self.entries.items() if e.target is not None]

    def unresolved_names(self) -> list[str]:
        return [n for n, e in self.entries.items() if e.target is None]


def plan_from_report(report: AuditReport) -> Plan:
    """The plan the audit's resolution implies (duplicate names listed, not resolved)."""
    entries: dict[str, PlanEntry] = {}
    for m in report.models:
        r = m.resolution
        entries[m.model_name] = PlanEntry(
            model_name=m.model_name,
            target=r.target if r else None,
            references=m.via_proxy,
            reason=None if (r and r.resolved) else m.resolution_dict()["reason"],
            choices=[c.as_dict() for c in r.choices] if r else [],
            lost_behaviours=[b.as_dict() for b in r.lost_behaviours] if r else [],
            duplicates=[
                {
                    "user": d.user,
                    "model_id": d.model_id,
                    "same_name_as": list(d.other_ids),
                    "new_name": d.new_name,
                }
                for d in report.duplicates
                if d.model_name == m.model_name and d.resolution == "blocking"
            ],
        )
    return Plan(None, report.database, list(report.proxy.urls), entries, report.config_path)


def plan_to_yaml(plan: Plan, path: str | Path) -> str:
    import yaml

    models: dict[str, Any] = {}
    for name, e in plan.entries.items():
        item: dict[str, Any] = {"references": e.references}
        if e.target is not None:
            t = e.target.as_dict()
            if not e.target.key_required:
                t["key_required"] = False
            item["target"] = t
            if e.allow_duplicate_name:
                item["allow_duplicate_name"] = True
            if e.keep:
                item["keep"] = list(e.keep)
            if e.duplicates:
                # informational: renames that would duplicate a user's model name
                item["duplicate_names"] = e.duplicates
        else:
            item["target"] = None
            item["reason"] = e.reason
            if e.choices:
                item["choices"] = e.choices
        if e.lost_behaviours:
            item["lost_behaviours"] = e.lost_behaviours
        models[name] = item
    body = {
        "format": PLAN_FORMAT,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "database": plan.database,
        "litellm_config": plan.litellm_config,
        "proxy_urls": plan.proxy_urls,
        "models": models,
    }
    text = _HEADER.format(path=path) + yaml.safe_dump(
        body, sort_keys=False, allow_unicode=True, default_flow_style=False
    )
    return redact.scrub(text)


def write_plan(plan: Plan, path: str | Path) -> Path:
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(plan_to_yaml(plan, p), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write plan: {exc.strerror or exc}", path=str(p)) from None
    plan.path = p
    return p


def _target_from(raw: Any, where: str, path: str) -> Target | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}.target must be a mapping or null", path=path)
    missing = [k for k in ("provider", "base_url", "model") if not raw.get(k)]
    if missing:
        raise ConfigError(f"{where}.target lacks {', '.join(missing)}", path=path)
    if normalise_url(raw["base_url"]) is None:
        raise ConfigError(
            f"{where}.target.base_url {raw['base_url']!r} is not an http(s) URL", path=path
        )
    key_required = raw.get("key_required", True)
    if not isinstance(key_required, bool):
        raise ConfigError(f"{where}.target.key_required must be true or false", path=path)
    env_name = raw.get("api_key_env")
    if env_name is None and key_required:
        raise ConfigError(
            f"{where}.target.api_key_env is required (or set key_required: false)", path=path
        )
    if env_name is not None and not _ENV_NAME.match(str(env_name)):
        raise ConfigError(
            f"{where}.target.api_key_env must be a variable NAME, not a value",
            path=path,
            hint="write e.g. DEEPSEEK_API_KEY and export the key in the environment",
        )
    return Target(
        str(raw["provider"]),
        str(raw["base_url"]),
        str(raw["model"]),
        None if env_name is None else str(env_name),
        key_required,
    )


def read_plan(path: str | Path) -> Plan:
    p = Path(path)
    data = read_yaml(
        p, what="plan", missing_hint="write one with `layra-migrate audit --plan-out plan.yaml`"
    )
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise ConfigError(f"not a layra-migrate plan (format must be {PLAN_FORMAT})", path=str(p))
    urls = data.get("proxy_urls")
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise ConfigError("proxy_urls must be a non-empty list of URLs", path=str(p))
    for u in urls:
        if normalise_url(u) is None:
            raise ConfigError(f"proxy_urls entry {u!r} is not an http(s) URL", path=str(p))
    models = data.get("models") or {}
    if not isinstance(models, dict):
        raise ConfigError("models must be a mapping of model name -> entry", path=str(p))
    entries: dict[str, PlanEntry] = {}
    for name, item in models.items():
        where = f"models.{name}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be a mapping", path=str(p))
        target = _target_from(item.get("target"), where, str(p))
        allow = item.get("allow_duplicate_name", False)
        if not isinstance(allow, bool):
            raise ConfigError(f"{where}.allow_duplicate_name must be true or false", path=str(p))
        keep = item.get("keep") or []
        if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
            raise ConfigError(f"{where}.keep must be a list of model_id strings", path=str(p))
        entries[str(name)] = PlanEntry(
            str(name),
            target,
            int(item.get("references") or 0),
            item.get("reason"),
            list(item.get("choices") or []),
            allow_duplicate_name=allow,
            keep=list(keep),
        )
    db = data.get("database")
    return Plan(p, None if db is None else str(db), list(urls), entries, data.get("litellm_config"))


def check_fresh(plan: Plan, report: AuditReport) -> None:
    """Refuse a plan that does not cover every proxied name the database holds now."""
    uncovered = [m.model_name for m in report.models if m.model_name not in plan.entries]
    if uncovered:
        shown = ", ".join(sorted(uncovered)[:10])
        raise RefusedError(
            f"stale plan: the database holds proxied model names the plan does not cover: {shown}",
            hint="run `layra-migrate audit --plan-out` again and review the new plan",
        )
    if plan.database and report.database != plan.database:
        raise RefusedError(
            f"plan was written for database {plan.database!r}, not {report.database!r}",
            hint="pass --db or write a plan for this database",
        )


@dataclass(frozen=True)
class KeyValues:
    """Key values by variable name, read from the environment for the names a run needs."""

    values: dict[str, str]

    def for_target(self, target: Target) -> str:
        if target.api_key_env and target.api_key_env in self.values:
            return self.values[target.api_key_env]
        return PLACEHOLDER_KEY


def resolve_keys(plan: Plan, env: Environment, names: list[str] | None = None) -> KeyValues:
    """Read every key the given names need; a missing required one refuses (exit 4)."""
    values: dict[str, str] = {}
    missing: list[str] = []
    for name in names if names is not None else plan.resolved_names():
        target = plan.target(name)
        if target is None or not target.api_key_env:
            continue
        value = env.get(target.api_key_env)
        if value:
            values[target.api_key_env] = value
            redact.register_secret(value)
        elif target.key_required and target.api_key_env not in missing:
            missing.append(target.api_key_env)
    if missing:
        raise RefusedError(
            f"key variable(s) not set: {', '.join(missing)}",
            hint="export them or put them in the --env-file; nothing was written",
        )
    return KeyValues(values)
