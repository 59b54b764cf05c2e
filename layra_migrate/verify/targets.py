"""Target discovery: which (base URL, model id, key) triples a verify run probes.

From the database (what the app calls now, in all four places) or from the plan
(what ``rewrite`` would write: test before touching data). Each target keeps the
distinct parameter shapes its live references send (:mod:`.shaping`); soft-deleted
documents are counted but never shape a probe. Keys live only in
:class:`VerifyTarget` (``repr=False``) and are never put in a dict.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from layra_migrate import redact
from layra_migrate.litellm.providers import PROVIDERS
from layra_migrate.locations import LOCATION_NAMES, LOCATIONS, Reference
from layra_migrate.plan import PLACEHOLDER_KEY
from layra_migrate.proxy import normalise_url
from layra_migrate.verify.outcomes import AUTH_FAILED
from layra_migrate.verify.shaping import ProbeParams, Shape, ShapeTally, config_params

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from layra_migrate.plan import Plan
    from layra_migrate.proxy import ProxySet
    from layra_migrate.settings import Environment

# Hosts whose API is not OpenAI-compatible chat, beyond the provider catalog's base URLs.
_HOST_PROVIDERS = {
    "api.anthropic.com": "anthropic",
    "api.voyageai.com": "voyage",
    "api.cohere.ai": "cohere",
    "api.cohere.com": "cohere",
    "ollama.com": "ollama",
}


@dataclass
class VerifyTarget:
    """One distinct (base URL, model id, key). The key is kept out of repr and of every dict."""

    provider: str
    base_url: str
    model: str
    references: int = 0
    params: ProbeParams = field(default_factory=ProbeParams)
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    skip_reason: str | None = None
    # set when the probe must not be sent (e.g. a plan key variable that is not set)
    precheck_status: str | None = None
    precheck_detail: str | None = None
    model_names: list[str] = field(default_factory=list)  # plan: the proxied names mapped here
    shapes: list[Shape] = field(default_factory=list)  # distinct live shapes, most common first
    distinct_shapes: int = 0  # how many distinct shapes the live references send (may be more)
    shape_index: int = 1  # which of ``shapes`` this (expanded) target probes

    @property
    def key_label(self) -> str | None:
        """The stored key, masked (``sk-...abcd``), to tell apart targets that differ only by
        key (database source). Plan targets are named by their variable instead."""
        if self.api_key_env or not self.api_key:
            return None
        return redact.mask_secret(self.api_key)

    @property
    def key_hint(self) -> str:
        """Where the key comes from, for hints: the variable name, never the value."""
        if self.api_key_env:
            return self.api_key_env
        spec = PROVIDERS.get(self.provider)
        if spec and spec.key_envs:
            return f"the stored api_key (rewritten from {spec.key_envs[0]})"
        return "the api_key stored for this model"


def provider_of(url: str) -> tuple[str, str | None]:
    """(provider label, reason it is not an OpenAI-compatible chat target or None)."""
    norm = normalise_url(url)
    host = (urlsplit(url.strip()).hostname or "").lower() if norm else ""
    matches = [p for p in PROVIDERS.values() if p.base_url and normalise_url(p.base_url) == norm]
    name = min((p.name for p in matches), key=len) if matches else None
    if name is None:
        name = _HOST_PROVIDERS.get(host)
        if name is None and host.endswith(".openai.azure.com"):
            name = "azure"
    if name is None:
        return host or "unknown", None
    spec = PROVIDERS.get(name)
    if spec is not None and not spec.openai_chat:
        return name, spec.unsupported_reason or f"{name} is not an OpenAI-compatible chat endpoint"
    return name, None


def _url_key(url: Any) -> str:
    return url.strip().rstrip("/") if isinstance(url, str) else ""


@dataclass
class TargetSet:
    targets: list[VerifyTarget]
    not_migrated: int = 0  # references still pointing at the proxy (database source)


async def scan(
    db: AsyncDatabase[dict[str, Any]], batch_size: int = 500
) -> AsyncIterator[tuple[Reference, bool]]:
    """Every model configuration in the four places, with whether its document is
    soft-deleted (``is_delete: true``): a projected, read-only streaming scan."""
    for name in LOCATION_NAMES:
        loc = LOCATIONS[name]
        projection = {**loc.projection(), "is_delete": 1}
        cursor = db[loc.collection].find(loc.candidate_filter, projection, batch_size=batch_size)
        async for doc in cursor:
            deleted = doc.get("is_delete") is True
            for ref in loc.references(doc):
                yield ref, deleted


def _key_of(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


async def database_targets(db: AsyncDatabase[dict[str, Any]], proxies: ProxySet) -> TargetSet:
    """Distinct direct targets the database holds now; proxied references are only counted."""
    found: dict[tuple[str, str, str | None], VerifyTarget] = {}
    tallies: dict[tuple[str, str, str | None], ShapeTally] = {}
    not_migrated = 0
    async for ref, deleted in scan(db):
        url = ref.model_url
        if proxies.matches(url):
            not_migrated += 1
            continue
        name = ref.model_name if isinstance(ref.model_name, str) else ""
        key = _key_of(ref.api_key)
        redact.register_secret(key)
        ident = (_url_key(url), name, key)
        target = found.get(ident)
        if target is None:
            target = _new_database_target(url, name, key)
            found[ident] = target
            tallies[ident] = ShapeTally()
        target.references += 1
        if not deleted:
            tallies[ident].add(config_params(ref.config))
    for ident, target in found.items():
        _set_shapes(target, tallies[ident])
    return TargetSet(_sorted(found.values()), not_migrated)


def _new_database_target(url: Any, name: str, key: str | None) -> VerifyTarget:
    base = _url_key(url)
    if normalise_url(url) is None:
        shown = "empty" if not base else f"{base!r}, not an http(s) URL"
        return VerifyTarget(
            "-",
            base,
            name,
            api_key=key,
            skip_reason=(
                f"model_url is {shown}: Layra needs a full http(s) URL "
                "(fix it in the UI or the plan)"
            ),
        )
    provider, unsupported = provider_of(base)
    target = VerifyTarget(provider, base, name, api_key=key, skip_reason=unsupported)
    if not name and unsupported is None:
        target.skip_reason = "no model name stored"
    elif key is None and unsupported is None:
        target.precheck_status = AUTH_FAILED
        target.precheck_detail = (
            "no api_key stored: Layra's OpenAI client refuses to call without one; nothing was sent"
        )
    return target


async def plan_targets(
    plan: Plan, env: Environment, db: AsyncDatabase[dict[str, Any]] | None
) -> TargetSet:
    """The targets ``rewrite --plan`` would write, keys read from the environment.

    Parameters and reference counts come from a read-only scan of the proxied
    references the rewrite would redirect. A key variable that is not set (and
    required) makes that target ``auth_failed`` without sending anything; the
    other targets are still probed. Unresolved plan entries are ``skipped``.
    (:func:`run_verify` refuses a stale plan first, as ``rewrite`` does.)
    """
    proxy = plan.proxy
    found: dict[tuple[str, str, str | None], VerifyTarget] = {}
    by_name: dict[str, VerifyTarget] = {}
    skipped: list[VerifyTarget] = []
    for name, entry in plan.entries.items():
        t = entry.target
        if t is None:
            reason = f"unresolved in the plan: {entry.reason or 'no target'}"
            skipped.append(
                VerifyTarget(
                    "-",
                    "",
                    name,
                    references=entry.references,
                    model_names=[name],
                    skip_reason=reason,
                )
            )
            continue
        ident = (_url_key(t.base_url), t.model, t.api_key_env)
        target = found.get(ident)
        if target is None:
            provider_label, _ = provider_of(t.base_url)
            spec = PROVIDERS.get(t.provider)
            unsupported = None
            if spec is not None and not spec.openai_chat:
                unsupported = spec.unsupported_reason or f"{t.provider} is not OpenAI-compatible"
            target = VerifyTarget(
                t.provider or provider_label,
                t.base_url,
                t.model,
                api_key_env=t.api_key_env,
                skip_reason=unsupported,
            )
            value = env.get(t.api_key_env) if t.api_key_env else None
            if value:
                redact.register_secret(value)
                target.api_key = value
            elif t.key_required:
                target.precheck_status = AUTH_FAILED
                target.precheck_detail = (
                    f"key variable {t.api_key_env} is not set; nothing was sent"
                )
            else:
                target.api_key = PLACEHOLDER_KEY
            found[ident] = target
        target.model_names.append(name)
        target.references += entry.references
        by_name[name] = target
    if db is not None:
        counts: Counter[int] = Counter()
        tallies: dict[int, ShapeTally] = {}
        async for ref, deleted in scan(db):
            name = ref.model_name
            if not isinstance(name, str) or name not in by_name or not proxy.matches(ref.model_url):
                continue
            tgt = by_name[name]
            counts[id(tgt)] += 1
            tally = tallies.setdefault(id(tgt), ShapeTally())
            if not deleted:
                tally.add(config_params(ref.config))
        for tgt in found.values():
            if counts[id(tgt)]:
                tgt.references = counts[id(tgt)]
            _set_shapes(tgt, tallies.get(id(tgt), ShapeTally()))
    return TargetSet(_sorted(found.values()) + skipped)


def _sorted(targets: Any) -> list[VerifyTarget]:
    return sorted(
        targets,
        key=lambda t: (t.skip_reason is not None, t.provider, t.base_url, t.model, -t.references),
    )


def filter_provider(targets: list[VerifyTarget], only: str | None) -> list[VerifyTarget]:
    if not only:
        return targets
    wanted = only.strip().lower()
    return [t for t in targets if t.provider.lower() == wanted]


def _set_shapes(target: VerifyTarget, tally: ShapeTally) -> None:
    target.shapes = tally.shapes()
    target.distinct_shapes = tally.distinct
    target.params = target.shapes[0].params


def expand_shapes(targets: list[VerifyTarget]) -> list[VerifyTarget]:
    """One probe per (target, shape): a target whose references send several distinct
    parameter shapes is probed with each (at most ``MAX_SHAPES``, most common first)."""
    out: list[VerifyTarget] = []
    for t in targets:
        if len(t.shapes) <= 1 or t.skip_reason or t.precheck_status:
            out.append(t)
            continue
        for i, shape in enumerate(t.shapes, start=1):
            out.append(dataclasses.replace(t, params=shape.params, shape_index=i))
    return out


def shape_label(target: VerifyTarget) -> str | None:
    """``shape 2 of 3 (5 references): temperature=0.3`` when a target has several shapes."""
    if len(target.shapes) <= 1:
        return None
    shape = target.shapes[target.shape_index - 1]
    return (
        f"shape {target.shape_index} of {len(target.shapes)} ({shape.references} "
        f"reference(s)): {shape.params.describe()}"
    )
