"""Resolve the model name Layra sends to the direct provider LiteLLM routes it to.

Order, as LiteLLM's router does it: ``model_group_alias`` first, then an exact
``model_name`` group, then the most specific wildcard. A group with several
distinct upstreams is ambiguous: choosing one is the operator's decision (edit
the plan), never a guess.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from layra_migrate.litellm.config import Deployment, LiteLLMConfig, env_ref
from layra_migrate.litellm.providers import PROVIDERS, infer_provider, split_model

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

    @property
    def resolved(self) -> bool:
        return self.target is not None

    @property
    def status(self) -> str:
        return "resolved" if self.resolved else "unresolved"


EnvLookup = Callable[[str], "str | None"]


def _deployment_target(
    dep: Deployment, env: EnvLookup, sent_name: str
) -> tuple[Target | None, str | None, str | None, list[str]]:
    """(target, reason_code, reason, notes) for one deployment."""
    notes: list[str] = []
    model = dep.model
    if "*" in model:
        # wildcard passthrough: the concrete name comes from what the app sends
        prefix = dep.model_name.split("*", 1)[0]
        matched = sent_name[len(prefix) :] if sent_name.startswith(prefix) else sent_name
        model = model.replace("*", matched, 1)
    provider, model_id = split_model(model)
    if provider is None:
        provider = str(dep.extra.get("custom_llm_provider") or "") or infer_provider(model_id)
        if provider is None:
            return (
                None,
                UNKNOWN_PROVIDER,
                (f"cannot tell the provider of {model!r}; set provider and base_url in the plan"),
                notes,
            )
    if provider not in PROVIDERS and "/" in model and provider not in ("openai",):
        # "vendor/model" without a known provider prefix: LiteLLM would treat it as
        # openai-compatible
        # only with an api_base.
        if not dep.api_base:
            return None, UNKNOWN_PROVIDER, f"provider {provider!r} is not in the catalog", notes
    if dep.mode not in CHAT_MODES:
        return None, NOT_CHAT, f"{dep.mode} model ({dep.model}): not a chat target", notes
    spec = PROVIDERS.get(provider)
    if spec is not None and not spec.openai_chat:
        return (
            None,
            UNSUPPORTED,
            spec.unsupported_reason or f"{provider} is not OpenAI-compatible",
            notes,
        )

    base: str | None = dep.api_base
    base_var = env_ref(base)
    if base_var:
        base = env(base_var)
        if not base:
            return None, NEEDS_BASE, f"api_base comes from ${base_var}, which is not set", notes
    if provider in ("ollama", "ollama_chat") and base:
        base = base.rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"
    if not base:
        base = spec.base_url if spec else None
    if not base:
        return None, NEEDS_BASE, f"{provider} needs an api_base; set base_url in the plan", notes

    key_var = env_ref(dep.api_key)
    key_required = spec.key_required if spec else True
    if provider in ("ollama", "ollama_chat") and "ollama.com" in base:
        key_required = True
    if key_var is None:
        candidates = spec.key_envs if spec else (f"{provider.upper()}_API_KEY",)
        key_var = next((c for c in candidates if env(c)), candidates[0])
        if dep.api_key:
            notes.append(
                f"config.yaml holds a literal key for {dep.model_name}; "
                f"the rewrite reads ${key_var} instead"
            )
    return Target(provider, base, model_id, key_var, key_required), None, None, notes


def _wildcard_groups(config: LiteLLMConfig, name: str) -> list[Deployment]:
    best: list[Deployment] = []
    best_len = -1
    for group, deps in config.groups().items():
        if "*" not in group or not fnmatch.fnmatchcase(name, group):
            continue
        specificity = len(group.replace("*", ""))
        if specificity > best_len:
            best, best_len = deps, specificity
    return best


def resolve_name(config: LiteLLMConfig, name: str, env: EnvLookup) -> Resolution:
    """How LiteLLM routes ``name``, as a direct provider target."""
    route = name
    group_name = config.group_aliases.get(name, name)
    if group_name != name:
        route = f"{name} -> alias of {group_name}"
    groups = config.groups()
    deps = groups.get(group_name)
    if not deps:
        deps = _wildcard_groups(config, group_name)
        if deps:
            route = f"{name} -> wildcard {deps[0].model_name}"
    if not deps:
        return Resolution(
            name,
            None,
            NO_ROUTE,
            f"config.yaml has no route for {name!r}; set a target in the plan",
            route=None,
        )
    results = [_deployment_target(d, env, group_name) for d in deps]
    notes = [n for r in results for n in r[3]]
    fb = config.fallbacks.get(group_name) or config.fallbacks.get(name)
    if fb:
        notes.append(f"fallbacks {fb} are lost when calling {name} directly")
    targets = [r[0] for r in results if r[0] is not None]
    distinct: list[Target] = []
    for t in targets:
        if t not in distinct:
            distinct.append(t)
    if len(distinct) > 1 or (len(deps) > 1 and distinct and len(targets) < len(deps)):
        reason = f"load-balanced group of {len(deps)} deployments; choose one in the plan"
        failed = [r[2] for r in results if r[0] is None]
        if failed:
            reason += f" ({len(failed)} cannot be resolved: {failed[0]})"
        return Resolution(name, None, AMBIGUOUS, reason, route=route, choices=distinct, notes=notes)
    if not distinct:
        _t, code, why, _n = results[0]
        return Resolution(name, None, code, why, route=route, notes=notes)
    return Resolution(name, distinct[0], route=route, notes=notes)
