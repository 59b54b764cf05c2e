"""Resolve the model name Layra sends to the direct provider LiteLLM routes it to.

The order is LiteLLM 1.110.2's router, checked against it by ``tests/test_litellm_oracle.py``:

1. ``router_settings.model_group_alias`` (one level) names the group to use;
2. an exact ``model_name`` group;
3. wildcard routes (below); 4. a route whose ``litellm_params.model`` is the name itself.

Wildcard routes: each ``model_name`` with ``*`` becomes a regex (``*`` -> ``(.*)``,
   matched from the start), most specific (longest regex) first; the name is tried as
   sent, then as ``<provider>/<name>`` with the provider LiteLLM infers for a bare name
   from its model map (``catalog.infer_provider``). The captured parts replace the ``*``
   in the route's ``litellm_params.model``.

A group with several distinct upstreams is load-balanced: ambiguous, and choosing one is
the operator's decision (edit the plan), never a guess. The base URL and the key variable
come from the route, else from the proxy's own environment (``<PROVIDER>_API_BASE``, the
provider's default key variables), else from LiteLLM's defaults; then the one table in
``providers.direct_base_url`` maps LiteLLM's native endpoint to the OpenAI-compatible base.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from layra_migrate.litellm.behaviours import LostBehaviour, lost_behaviours
from layra_migrate.litellm.catalog import infer_provider, latest_alias_target
from layra_migrate.litellm.config import Deployment, LiteLLMConfig, env_ref
from layra_migrate.litellm.providers import PROVIDERS, direct_base_url, split_model

CHAT_MODES = frozenset({"chat", "completion", "responses"})

NO_ROUTE = "no_route"
AMBIGUOUS = "ambiguous"
UNSUPPORTED = "unsupported_provider"
NOT_CHAT = "not_chat_model"
NEEDS_BASE = "needs_api_base"
UNKNOWN_PROVIDER = "unknown_provider"


@dataclass(frozen=True)
class Target:
    """Where a proxied name goes directly. Never holds a key value."""

    provider: str
    base_url: str
    model: str
    api_key_env: str | None
    key_required: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "base_url": self.base_url,
            "model": self.model,
            "api_key_env": self.api_key_env,
        }


@dataclass
class Resolution:
    model_name: str
    target: Target | None
    reason_code: str | None = None
    reason: str | None = None
    route: str | None = None
    choices: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lost_behaviours: list[LostBehaviour] = field(default_factory=list)
    # where the base URL and the key variable came from (names and files, never values)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def resolved(self) -> bool:
        return self.target is not None

    @property
    def status(self) -> str:
        return "resolved" if self.resolved else "unresolved"


EnvLookup = Callable[[str], "str | None"]
SourceLookup = Callable[[str], "tuple[str | None, str | None]"]


@dataclass
class _DeploymentResult:
    target: Target | None
    code: str | None = None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)


def _provider_and_id(dep: Deployment, model: str) -> tuple[str | None, str]:
    """(provider, upstream id) the way ``get_llm_provider`` splits a deployment's model."""
    custom = dep.custom_llm_provider
    if custom:
        if custom == "openrouter" and model.startswith("openrouter/"):
            return custom, model[len("openrouter/") :]
        if model.startswith(custom + "/"):
            return custom, model[len(custom) + 1 :]
        return custom, model
    provider, model_id = split_model(model)
    if provider is None:
        return infer_provider(model_id), model_id
    return provider, model_id


def _deployment_target(
    dep: Deployment, model: str, lookup: SourceLookup, ref_lookup: SourceLookup
) -> _DeploymentResult:
    """``lookup`` answers for the proxy's environment at call time; ``ref_lookup`` for
    ``os.environ/`` references, which LiteLLM resolves before applying
    ``environment_variables``."""
    provider, model_id = _provider_and_id(dep, model)
    if provider is None:
        return _DeploymentResult(
            None,
            UNKNOWN_PROVIDER,
            f"LiteLLM cannot infer the provider of {model!r} (not in its model map); "
            "set provider and base_url in the plan",
        )
    spec = PROVIDERS.get(provider)
    if spec is None:
        return _DeploymentResult(
            None,
            UNKNOWN_PROVIDER,
            f"provider {provider!r} ({model}) is not in this tool's catalog; "
            "set a target in the plan",
        )
    if dep.mode not in CHAT_MODES:
        return _DeploymentResult(
            None, NOT_CHAT, f"{dep.mode} model ({dep.model}): not a chat target"
        )
    if not spec.openai_chat:
        return _DeploymentResult(
            None, UNSUPPORTED, spec.unsupported_reason or f"{provider} is not OpenAI-compatible"
        )
    model_id = latest_alias_target(provider, model_id)
    notes: list[str] = []
    sources: dict[str, str] = {}

    base: str | None = dep.api_base
    base_var = env_ref(base)
    if base_var:
        base, where = ref_lookup(base_var)
        if not base:
            return _DeploymentResult(
                None,
                NEEDS_BASE,
                f"api_base comes from ${base_var}, which is not set where the proxy runs",
            )
        sources["base_url"] = f"route api_base: os.environ/{base_var} (set in {where})"
    elif base:
        sources["base_url"] = "route api_base"
    if not base:
        for var in spec.base_envs:
            value, where = lookup(var)
            if value:
                base = value
                sources["base_url"] = f"${var} in {where}"
                break
    if not base and spec.litellm_default_base:
        base = spec.litellm_default_base
        sources["base_url"] = "LiteLLM default"
    if not base:
        return _DeploymentResult(
            None,
            NEEDS_BASE,
            f"{provider} needs an api_base (none in the route or the proxy's environment); "
            "set base_url in the plan",
        )
    direct, why = direct_base_url(provider, base)
    if direct is None:
        return _DeploymentResult(None, NEEDS_BASE, why)

    key_required = spec.key_required
    if provider in ("ollama", "ollama_chat") and "ollama.com" in direct:
        key_required = True
    key_var = env_ref(dep.api_key)
    if key_var is not None:
        _value, where = ref_lookup(key_var)
        sources["api_key_env"] = f"route api_key: os.environ/{key_var}" + (
            f" (set in {where})" if where else " (not set where the proxy runs)"
        )
    else:
        order = spec.key_read_order
        key_var = next((v for v in order if lookup(v)[0]), None)
        if key_var is not None:
            sources["api_key_env"] = f"LiteLLM default variable (set in {lookup(key_var)[1]})"
        else:
            key_var = spec.key_envs[0]
            sources["api_key_env"] = "LiteLLM default variable (not set where the proxy runs)"
        if dep.api_key:
            notes.append(
                f"config.yaml holds a literal key for {dep.model_name}; "
                f"the rewrite reads ${key_var} instead"
            )
    return _DeploymentResult(
        Target(provider, direct, model_id, key_var, key_required), None, None, notes, sources
    )


_COMPLEXITY = ("*", "+", "?", "\\", "^", "$", "|", "(", ")")


def _pattern_regex(pattern: str) -> str:
    return re.escape(pattern).replace(r"\*", "(.*)")


def _set_model(match: re.Match[str], model: str) -> str:
    if "*" not in model:
        return model
    groups = match.groups()
    if len(groups) > model.count("*"):
        return match.string
    for segment in groups:
        model = model.replace("*", segment, 1)
    return model


def _wildcard_route(
    config: LiteLLMConfig, name: str
) -> tuple[str, list[tuple[Deployment, str]]] | None:
    """(pattern, [(deployment, upstream model)]) of the wildcard route serving ``name``."""
    patterns: dict[str, list[Deployment]] = {}
    for dep in config.deployments:
        if "*" in dep.model_name:
            patterns.setdefault(_pattern_regex(dep.model_name), []).append(dep)
    ordered = sorted(
        patterns.items(),
        key=lambda kv: (len(kv[0]), sum(kv[0].count(c) for c in _COMPLEXITY)),
        reverse=True,
    )
    # LiteLLM tries the name as sent, then "<inferred provider>/<name>" ("None/..." when
    # it cannot infer one, which only a pattern such as "*" can match)
    candidates = [name, f"{infer_provider(name)}/{name}"]
    for request in candidates:
        for regex, deps in ordered:
            m = re.match(regex, request)
            if m:
                return deps[0].model_name, [(d, _set_model(m, d.model)) for d in deps]
    return None


def _first_of_identical(
    pairs: list[tuple[Deployment, str]],
) -> list[tuple[Deployment, str]]:
    """LiteLLM identifies a deployment by its group and litellm_params (in order); entries
    repeating both share one id and the router always serves the first of them."""
    seen: set[str] = set()
    out: list[tuple[Deployment, str]] = []
    for dep, model in pairs:
        ident = repr((dep.model_name, list(dep.params.items())))
        if ident not in seen:
            seen.add(ident)
            out.append((dep, model))
    return out


def resolve_name(
    config: LiteLLMConfig,
    name: str,
    env: EnvLookup,
    *,
    proxy_lookup: SourceLookup | None = None,
    ref_lookup: SourceLookup | None = None,
) -> Resolution:
    """How LiteLLM routes ``name``, as a direct provider target.

    ``env`` answers for the proxy's environment unless ``proxy_lookup`` (value, source)
    is given (``ProxyEnvironment.lookup``); ``ref_lookup`` answers ``os.environ/``
    references (``ProxyEnvironment.process_lookup``), defaulting to ``proxy_lookup``.
    """

    def default_lookup(var: str) -> tuple[str | None, str | None]:
        value = env(var)
        return (value, "the environment") if value else (None, None)

    lookup = proxy_lookup or default_lookup
    refs = ref_lookup or lookup
    route = name
    group_name = config.group_aliases.get(name, name)
    if group_name != name:
        route = f"{name} -> alias of {group_name}"
    pairs: list[tuple[Deployment, str]] = [
        (d, d.model) for d in config.groups().get(group_name, [])
    ]
    if not pairs:
        found = _wildcard_route(config, group_name)
        if found:
            pattern, pairs = found
            route = f"{route} -> wildcard {pattern}"
            inferred = infer_provider(group_name) if "/" not in group_name else None
            if inferred and not group_name.startswith(pattern.split("*", 1)[0]):
                route += f" (provider {inferred} inferred from LiteLLM's model map)"
    if not pairs:
        # a name equal to a route's litellm_params.model is served by that route (by all of
        # them when several share it), after groups and wildcards
        pairs = [
            (d, d.model)
            for d in config.deployments
            if d.model == group_name and "*" not in d.model_name
        ]
        if pairs:
            groups = ", ".join(sorted({d.model_name for d, _ in pairs}))
            route = f"{route} -> litellm_params.model of {groups}"
    pairs = _first_of_identical(pairs)
    deps = [d for d, _ in pairs]
    behaviours = lost_behaviours(config, [name, group_name], deps)
    if not pairs:
        reason = f"config.yaml has no route for {name!r}; set a target in the plan"
        default_fb = [b for b in behaviours if b.kind == "default_fallbacks"]
        if default_fb and any("*" in d.model_name for d in config.deployments):
            reason = (
                f"config.yaml has no route for {name!r} (the proxy answered it through "
                f"default_fallbacks: {default_fb[0].detail.split('with ', 1)[-1]}); "
                "set a target in the plan"
            )
        return Resolution(name, None, NO_ROUTE, reason, route=None, lost_behaviours=behaviours)
    results = [_deployment_target(d, model, lookup, refs) for d, model in pairs]
    notes = [n for r in results for n in r.notes]
    targets = [r.target for r in results if r.target is not None]
    distinct: list[Target] = []
    for t in targets:
        if t not in distinct:
            distinct.append(t)
    sources = next((r.sources for r in results if r.target is not None), {})
    if len(distinct) > 1 or (len(pairs) > 1 and distinct and len(targets) < len(pairs)):
        reason = f"load-balanced group of {len(pairs)} deployments; choose one in the plan"
        failed = [r.reason for r in results if r.target is None]
        if failed:
            reason += f" ({len(failed)} cannot be resolved: {failed[0]})"
        return Resolution(
            name,
            None,
            AMBIGUOUS,
            reason,
            route=route,
            choices=distinct,
            notes=notes,
            lost_behaviours=behaviours,
        )
    if not distinct:
        first = results[0]
        return Resolution(
            name,
            None,
            first.code,
            first.reason,
            route=route,
            notes=notes,
            lost_behaviours=behaviours,
        )
    return Resolution(
        name, distinct[0], route=route, notes=notes, lost_behaviours=behaviours, sources=sources
    )
