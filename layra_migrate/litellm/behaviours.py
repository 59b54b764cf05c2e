"""What the proxy did for a model name that a direct call will not do.

Each ``LostBehaviour`` names one proxy feature that applied to the name (read from the
routed deployments' ``litellm_params``, ``router_settings``, ``litellm_settings`` and
``general_settings``), what it was set to, and one line on what changes for users.
Values are copied only from settings that hold numbers, flags and model names; nothing
that can hold a secret is read here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from layra_migrate.litellm.config import Deployment, LiteLLMConfig

FALLBACK_KINDS = {
    "fallbacks": "on an error the proxy retried the request with {targets}",
    "context_window_fallbacks": "prompts too long for this model went to {targets}",
    "content_policy_fallbacks": "requests refused by the content policy went to {targets}",
}
IMPACT = {
    "fallbacks": "errors now reach users instead of being answered by another model",
    "default_fallbacks": "errors now reach users instead of being answered by another model",
    "context_window_fallbacks": "prompts over the context window now fail with a "
    "context-length error",
    "content_policy_fallbacks": "content-policy refusals now reach users",
    "rate_limit": "the proxy's limit no longer applies; the provider's own limits "
    "answer with 429 instead",
    "timeout": "the proxy's timeout no longer applies; Layra's HTTP client timeout does",
    "num_retries": "transient provider errors are no longer retried; users see them",
    "drop_params": "parameters the provider rejects (e.g. stream_options, temperature on "
    "reasoning models) now fail with 400 instead of being dropped: run verify",
    "caching": "identical requests are no longer answered from the proxy's cache: "
    "more latency and spend",
    "budget": "spend is no longer capped by the proxy: set a limit at the provider",
    "max_parallel_requests": "the proxy's concurrency cap no longer applies",
}
_BUDGET_KEYS = ("max_budget", "budget_duration")
_LIMIT_KEYS = ("rpm", "tpm")


@dataclass(frozen=True)
class LostBehaviour:
    kind: str
    detail: str
    impact: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail, "impact": self.impact}

    def line(self) -> str:
        return f"{self.kind}: {self.detail} -> {self.impact}"


def _names(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)] if value else []


def _fallback_targets(entries: Any, names: Iterable[str]) -> list[str]:
    wanted = set(names)
    out: list[str] = []
    if not isinstance(entries, list):
        return out
    for item in entries:
        if not isinstance(item, dict):
            continue
        for key, targets in item.items():
            if str(key) in wanted:
                out.extend(t for t in _names(targets) if t not in out)
    return out


def _number(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return f"{value:g}"
    if isinstance(value, str) and value.strip():
        try:
            return f"{float(value):g}"
        except ValueError:
            return None
    return None


def _per_deployment(deps: list[Deployment], key: str) -> list[str]:
    values: list[str] = []
    for d in deps:
        v = _number(d.params.get(key))
        if v is not None and v not in values:
            values.append(v)
    return values


def lost_behaviours(
    config: LiteLLMConfig, names: Iterable[str], deps: list[Deployment]
) -> list[LostBehaviour]:
    """Every proxy behaviour that applied to a name routed to ``deps``.

    ``names`` are the name Layra sends and the group it resolved to (alias target).
    """
    keys = [n for n in dict.fromkeys(names) if n]
    router = config.router_settings
    settings = config.litellm_settings
    general = config.general_settings
    out: list[LostBehaviour] = []

    for kind, text in FALLBACK_KINDS.items():
        targets: list[str] = []
        for section in (router, settings):
            targets += [t for t in _fallback_targets(section.get(kind), keys) if t not in targets]
        if targets:
            out.append(LostBehaviour(kind, text.format(targets=", ".join(targets)), IMPACT[kind]))
    default_fb: list[str] = []
    for section in (router, settings):
        default_fb += [t for t in _names(section.get("default_fallbacks")) if t not in default_fb]
    if default_fb and not set(default_fb) >= set(keys):
        out.append(
            LostBehaviour(
                "default_fallbacks",
                f"on an error the proxy answered with {', '.join(default_fb)}",
                IMPACT["default_fallbacks"],
            )
        )

    limits = [
        f"{key} {'/'.join(values)}" for key in _LIMIT_KEYS if (values := _per_deployment(deps, key))
    ]
    if limits:
        out.append(
            LostBehaviour("rate_limit", f"{', '.join(limits)} per deployment", IMPACT["rate_limit"])
        )

    timeouts = _per_deployment(deps, "timeout") or _per_deployment(deps, "stream_timeout")
    router_timeout = _number(router.get("timeout"))
    settings_timeout = _number(settings.get("request_timeout"))
    if timeouts:
        detail = f"timeout {'/'.join(timeouts)} s (deployment)"
    elif router_timeout:
        detail = f"timeout {router_timeout} s (router_settings)"
    elif settings_timeout:
        detail = f"request_timeout {settings_timeout} s (litellm_settings)"
    else:
        detail = ""
    if detail:
        out.append(LostBehaviour("timeout", detail, IMPACT["timeout"]))

    retries = _per_deployment(deps, "num_retries")
    retry_detail = ""
    if retries:
        retry_detail = f"num_retries {'/'.join(retries)} (deployment)"
    elif _number(router.get("num_retries")):
        retry_detail = f"num_retries {_number(router.get('num_retries'))} (router_settings)"
    elif _number(settings.get("num_retries")):
        retry_detail = f"num_retries {_number(settings.get('num_retries'))} (litellm_settings)"
    if retry_detail and not retry_detail.startswith("num_retries 0 "):
        out.append(LostBehaviour("num_retries", retry_detail, IMPACT["num_retries"]))

    drop_where = []
    if any(d.params.get("drop_params") is True for d in deps):
        drop_where.append("deployment")
    if settings.get("drop_params") is True:
        drop_where.append("litellm_settings")
    if drop_where:
        out.append(
            LostBehaviour(
                "drop_params",
                f"drop_params: true ({', '.join(drop_where)})",
                IMPACT["drop_params"],
            )
        )

    if settings.get("cache") is True or router.get("cache_responses") is True:
        where = "litellm_settings.cache" if settings.get("cache") is True else "cache_responses"
        cache_params = settings.get("cache_params")
        cache_kind = cache_params.get("type") if isinstance(cache_params, dict) else None
        detail = f"{where}: true" + (f" ({cache_kind})" if isinstance(cache_kind, str) else "")
        out.append(LostBehaviour("caching", detail, IMPACT["caching"]))

    budgets = [
        f"{key} {d.params.get(key)}"
        for d in deps
        for key in _BUDGET_KEYS
        if d.params.get(key) is not None and not isinstance(d.params.get(key), dict | list)
    ]
    if _number(settings.get("max_budget")):
        budgets.append(f"proxy max_budget {_number(settings.get('max_budget'))}")
    if router.get("provider_budget_config"):
        budgets.append("router_settings.provider_budget_config")
    if general.get("max_budget") is not None and _number(general.get("max_budget")):
        budgets.append(f"general_settings max_budget {_number(general.get('max_budget'))}")
    if budgets:
        out.append(LostBehaviour("budget", "; ".join(dict.fromkeys(budgets)), IMPACT["budget"]))

    parallel = _per_deployment(deps, "max_parallel_requests")
    if parallel:
        out.append(
            LostBehaviour(
                "max_parallel_requests",
                f"max_parallel_requests {'/'.join(parallel)} per deployment",
                IMPACT["max_parallel_requests"],
            )
        )
    return out
