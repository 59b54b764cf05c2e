"""``verify --against-proxy``: does going direct change which upstream answers?

Before the cut-over the proxy still runs, so the strongest evidence is cheap: for
every proxied model name the plan gives a target, send Layra's request (the most
common parameter shape of that name's live references, :mod:`.shaping`) twice,
with bounded concurrency:

- through the proxy: the alias as Layra sends it, to the proxy URL Layra's documents
  hold (or ``--proxy-endpoint``), with the key those documents hold (masked everywhere);
- directly: the plan's base URL, upstream model id and key variable.

Then compare what each answer reveals about the upstream. LiteLLM's proxy (1.110.2:
``proxy/common_request_processing.py``, ``litellm_core_utils/add_retry_fallback_headers.py``)
adds to every response ``x-litellm-model-name`` (the deployment's model, e.g.
``openai/gpt-4o``), ``x-litellm-model-api-base``, ``x-litellm-model-id``,
``x-litellm-model-group`` (the group that answered: the fallback's after a fallback) and
``x-litellm-attempted-fallbacks`` / ``-retries``; it restamps the response ``model``
field to the alias the client asked for, except after a fallback. Older proxies send
fewer headers and return the upstream's own ``model`` field: both are read, absence is
tolerated, and a proxy that reveals nothing is ``undetermined``, never ``same``.

Statuses per name (:data:`COMPARISON_STATUSES`): ``same``; ``proxy_fell_back`` (the
proxy served it from a fallback: the direct call hits the primary the proxy gave up
on); ``differs`` (another upstream model or host); ``direct_fails`` / ``proxy_fails``
(with the probe's own classification); ``undetermined``; ``skipped`` (no target).

Only the probe prompt is sent, never Layra's data. Layra's documents are only read;
the comparison is recorded in the tool's own ``layra_migrate_verify`` collection
(``mode: "against_proxy"``) so that ``decommission`` can show it.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from layra_migrate import redact
from layra_migrate.proxy import normalise_url
from layra_migrate.toolstate import VERIFY_RUNS
from layra_migrate.verify.outcomes import (
    AUTH_FAILED,
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT_S,
    OK,
    SCHEMA,
    SKIPPED,
)
from layra_migrate.verify.probing import ProbeResult, probe_all
from layra_migrate.verify.report import insert_record
from layra_migrate.verify.shaping import ProbeParams, ShapeTally, config_params
from layra_migrate.verify.targets import VerifyTarget, filter_provider, plan_targets, scan

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from layra_migrate.plan import Plan
    from layra_migrate.settings import Environment

MODE = "against_proxy"
SAME = "same"
PROXY_FELL_BACK = "proxy_fell_back"
DIFFERS = "differs"
DIRECT_FAILS = "direct_fails"
PROXY_FAILS = "proxy_fails"
UNDETERMINED = "undetermined"
COMPARISON_STATUSES = (
    SAME,
    PROXY_FELL_BACK,
    DIFFERS,
    DIRECT_FAILS,
    PROXY_FAILS,
    UNDETERMINED,
    SKIPPED,
)
PROXY_PROVIDER = "litellm-proxy"

H_MODEL = "x-litellm-model-name"
H_API_BASE = "x-litellm-model-api-base"
H_MODEL_ID = "x-litellm-model-id"
H_GROUP = "x-litellm-model-group"
H_FALLBACKS = "x-litellm-attempted-fallbacks"
H_RETRIES = "x-litellm-attempted-retries"
H_VERSION = "x-litellm-version"


@dataclass(frozen=True)
class ProxyEvidence:
    """What the proxy's answer says about the upstream that served it."""

    response_model: str | None = None
    deployment: str | None = None  # x-litellm-model-name, e.g. "openai/gpt-4o"
    api_base: str | None = None
    model_id: str | None = None
    model_group: str | None = None
    attempted_fallbacks: int | None = None
    attempted_retries: int | None = None
    litellm_version: str | None = None

    @classmethod
    def of(cls, result: ProbeResult | None) -> ProxyEvidence:
        if result is None:
            return cls()
        h = result.upstream_headers
        return cls(
            result.response_model,
            h.get(H_MODEL),
            h.get(H_API_BASE),
            h.get(H_MODEL_ID),
            h.get(H_GROUP),
            _int(h.get(H_FALLBACKS)),
            _int(h.get(H_RETRIES)),
            h.get(H_VERSION),
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _upstream_model_matches(deployment: str, model: str) -> bool:
    """``openai/gpt-4o`` and ``gpt-4o`` name one model; so do ``openrouter/a/b`` and ``a/b``."""
    if deployment == model:
        return True
    return "/" in deployment and deployment.split("/", 1)[1] == model


def _host(url: str) -> tuple[str, int | None] | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port


def compare(
    name: str, target: VerifyTarget, proxy: ProbeResult, direct: ProbeResult
) -> tuple[str, str, str]:
    """(status, one-line detail, one-line hint) for one proxied name. Pure logic."""
    ev = ProxyEvidence.of(proxy)
    served = ev.deployment or ev.model_group or ev.response_model or "another deployment"
    if proxy.status == OK and (ev.attempted_fallbacks or 0) > 0:
        direct_said = (
            "the direct call answered too"
            if direct.status == OK
            else f"the direct call failed: {direct.status}: {direct.detail}"
        )
        where = f" at {ev.api_base}" if ev.api_base else ""
        return (
            PROXY_FELL_BACK,
            f"the proxy answered from a fallback ({served}{where}) after "
            f"{ev.attempted_fallbacks} fallback attempt(s): its primary for {name!r} "
            f"failed; {direct_said}",
            f"the primary behind {name!r} fails: fix it, or choose the fallback ({served}) "
            "as this name's target in the plan",
        )
    if direct.status != OK:
        proxy_said = (
            "the proxy answered" if proxy.status == OK else f"the proxy failed too: {proxy.status}"
        )
        return (
            DIRECT_FAILS,
            f"direct: {direct.status}: {direct.detail or '-'}; {proxy_said}",
            direct.hint or "fix the direct target in the plan",
        )
    if proxy.status != OK:
        return (
            PROXY_FAILS,
            f"proxy: {proxy.status}: {proxy.detail or '-'}; the direct call "
            "answered, but there is nothing to compare it with",
            "check the proxy key Layra stores for this name, or pass --proxy-endpoint",
        )
    problems: list[str] = []
    evidence = False
    if ev.deployment:
        evidence = True
        if not _upstream_model_matches(ev.deployment, target.model):
            problems.append(f"the proxy used model {ev.deployment}, the plan calls {target.model}")
    elif ev.response_model and ev.response_model != name:
        # an older proxy passes the upstream's own model field through
        evidence = True
        if direct.response_model and ev.response_model != direct.response_model:
            problems.append(
                f"the proxy's upstream answered as {ev.response_model}, the direct "
                f"target as {direct.response_model}"
            )
    if ev.api_base:
        evidence = True
        ours, theirs = _host(target.base_url), _host(ev.api_base)
        if ours is not None and theirs is not None and ours != theirs:
            problems.append(f"the proxy called {ev.api_base}, the plan calls {target.base_url}")
    if problems:
        return (
            DIFFERS,
            "; ".join(problems),
            f"edit the plan's target for {name!r} to what the proxy uses, or confirm the "
            "change is intended and re-run",
        )
    if not evidence:
        return (
            UNDETERMINED,
            "the proxy revealed no upstream (no x-litellm-model-name or "
            "-api-base header, and its model field is the alias): nothing proves the "
            "direct target is the same",
            "compare the running proxy's config with the plan by hand",
        )
    where = f" at {ev.api_base}" if ev.api_base else ""
    return SAME, f"both answered from {ev.deployment or ev.response_model}{where}", ""


@dataclass
class NameComparison:
    """One proxied model name: the same request through the proxy and direct."""

    model_name: str
    target: VerifyTarget  # the plan's direct target (key kept out of repr)
    references: int = 0
    params: ProbeParams = field(default_factory=ProbeParams)
    proxy_endpoint: str = ""
    proxy_key_label: str | None = None
    proxy: ProbeResult | None = None
    direct: ProbeResult | None = None
    status: str = SKIPPED
    detail: str = ""
    hint: str = ""

    def as_dict(self) -> dict[str, Any]:
        t = self.target
        ev = ProxyEvidence.of(self.proxy)
        proxy: dict[str, Any] = {
            "endpoint": self.proxy_endpoint or None,
            "key": self.proxy_key_label,
        }
        if self.proxy is not None:
            proxy.update(_probe_dict(self.proxy))
            proxy.update({k: v for k, v in ev.as_dict().items() if k != "response_model"})
        direct: dict[str, Any] = {
            "provider": t.provider,
            "base_url": t.base_url or None,
            "model": t.model,
            "api_key_env": t.api_key_env,
        }
        if self.direct is not None:
            direct.update(_probe_dict(self.direct))
        return {
            "model_name": self.model_name,
            "references": self.references,
            "status": self.status,
            "detail": redact.scrub(self.detail),
            "hint": redact.scrub(self.hint) or None,
            "params": self.params.as_dict() or None,
            "proxy": proxy,
            "direct": direct,
        }


def _probe_dict(r: ProbeResult) -> dict[str, Any]:
    return {
        "status": r.status,
        "detail": redact.scrub(r.detail) or None,
        "http_status": r.http_status,
        "latency_ms": r.latency_ms,
        "response_model": r.response_model,
    }


@dataclass
class ProxyComparisonReport:
    database: str
    plan_path: str | None
    proxy_endpoint: str | None  # the --proxy-endpoint override, if any
    comparisons: list[NameComparison] = field(default_factory=list)
    only: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    wall_ms: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S
    concurrency: int = DEFAULT_CONCURRENCY
    recorded: bool = False
    record_error: str | None = None

    def count(self, status: str) -> int:
        return sum(1 for c in self.comparisons if c.status == status)

    @property
    def same(self) -> int:
        return self.count(SAME)

    @property
    def skipped(self) -> int:
        return self.count(SKIPPED)

    @property
    def different(self) -> int:
        return sum(1 for c in self.comparisons if c.status not in (SAME, SKIPPED))

    def passed(self, allow_skipped: bool = False) -> bool:
        return self.different == 0 and (allow_skipped or self.skipped == 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "mode": MODE,
            "source": "plan",
            "database": self.database,
            "plan": self.plan_path,
            "proxy_endpoint": self.proxy_endpoint,
            "only": self.only,
            "names": [c.as_dict() for c in self.comparisons],
            "counts": {s: self.count(s) for s in COMPARISON_STATUSES},
            "ok": self.same,
            "failed": self.different,
            "skipped": self.skipped,
            "timeout_s": self.timeout_s,
            "concurrency": self.concurrency,
            "wall_ms": self.wall_ms,
            "recorded": self.recorded,
        }

    def record(self, allow_skipped: bool) -> dict[str, Any]:
        """The VERIFY_RUNS document (``mode: "against_proxy"``): never keys."""
        return {
            "source": "plan",
            "mode": MODE,
            "database": self.database,
            "plan": self.plan_path,
            "proxy_endpoint": self.proxy_endpoint,
            "only": self.only,
            "wall_ms": self.wall_ms,
            "passed": self.passed(allow_skipped),
            "allow_skipped": allow_skipped,
            "ok": self.same,
            "failed": self.different,
            "skipped": self.skipped,
            "counts": {s: self.count(s) for s in COMPARISON_STATUSES},
            "names": [
                {
                    "model_name": c.model_name,
                    "status": c.status,
                    "detail": redact.scrub(c.detail),
                    "target_base_url": c.target.base_url,
                    "normalised_url": normalise_url(c.target.base_url),
                    "target_model": c.target.model,
                    "api_key_env": c.target.api_key_env,
                    "proxy_deployment": ProxyEvidence.of(c.proxy).deployment,
                    "proxy_api_base": ProxyEvidence.of(c.proxy).api_base,
                }
                for c in self.comparisons
            ],
        }


@dataclass
class _NameRefs:
    """What Layra's live documents hold for one proxied name."""

    references: int = 0
    urls: Counter[str] = field(default_factory=Counter)
    keys: Counter[str] = field(default_factory=Counter)
    any_keys: Counter[str] = field(default_factory=Counter)  # soft-deleted documents too
    shapes: ShapeTally = field(default_factory=ShapeTally)


async def _proxied_refs(
    db: AsyncDatabase[dict[str, Any]], plan: Plan, names: set[str]
) -> dict[str, _NameRefs]:
    found: dict[str, _NameRefs] = {}
    async for ref, deleted in scan(db):
        name = ref.model_name
        if not isinstance(name, str) or name not in names or not plan.proxy.matches(ref.model_url):
            continue
        refs = found.setdefault(name, _NameRefs())
        refs.references += 1
        key = ref.api_key if isinstance(ref.api_key, str) and ref.api_key else None
        redact.register_secret(key)
        if key:
            refs.any_keys[key] += 1
        if deleted:
            continue
        refs.urls[str(ref.model_url).strip()] += 1
        if key:
            refs.keys[key] += 1
        refs.shapes.add(config_params(ref.config))
    return found


def _most_common(counter: Counter[str]) -> str | None:
    return min(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0] if counter else None


def _proxy_target(
    name: str, refs: _NameRefs, endpoint: str | None, params: ProbeParams
) -> VerifyTarget:
    url = endpoint or _most_common(refs.urls) or ""
    key = _most_common(refs.keys) or _most_common(refs.any_keys)
    t = VerifyTarget(
        PROXY_PROVIDER,
        url,
        name,
        references=refs.references,
        params=params,
        api_key=key,
        model_names=[name],
    )
    if normalise_url(url) is None:
        t.skip_reason = (
            "no http(s) proxy URL for this name in Layra's documents: pass --proxy-endpoint URL"
        )
    elif key is None:
        t.precheck_status = AUTH_FAILED
        t.precheck_detail = (
            "no api_key stored with this name: Layra's OpenAI client refuses "
            "to call without one; nothing was sent"
        )
    return t


async def run_against_proxy(
    db: AsyncDatabase[dict[str, Any]],
    database: str,
    *,
    plan: Plan,
    env: Environment,
    proxy_endpoint: str | None = None,
    only: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    allow_skipped: bool = False,
    on_targets: Callable[[list[VerifyTarget]], None] | None = None,
    on_result: Callable[[ProbeResult], None] | None = None,
    record: bool = True,
) -> ProxyComparisonReport:
    """Compare, name by name, the proxy's answer with the direct target's."""
    from layra_migrate.audit import run_audit
    from layra_migrate.errors import UsageError
    from layra_migrate.plan import check_fresh

    if proxy_endpoint is not None and normalise_url(proxy_endpoint) is None:
        raise UsageError(
            f"--proxy-endpoint {proxy_endpoint!r} is not an http(s) URL",
            hint="e.g. --proxy-endpoint http://localhost:4000/v1",
        )
    started = time.monotonic()
    report = ProxyComparisonReport(
        database,
        str(plan.path) if plan.path else None,
        proxy_endpoint,
        only=only,
        timeout_s=timeout_s,
        concurrency=concurrency,
    )
    check_fresh(plan, await run_audit(db, plan.proxy, None, env))  # the rewrite's staleness rule
    tset = await plan_targets(plan, env, None)
    targets = filter_provider(tset.targets, only)
    if only and not targets:
        known = sorted({t.provider for t in tset.targets if t.provider != "-"})
        raise UsageError(
            f"no target of provider {only!r}", hint=f"providers here: {', '.join(known) or 'none'}"
        )
    by_name = {name: t for t in targets for name in t.model_names}
    refs = await _proxied_refs(db, plan, set(by_name))
    pairs: list[tuple[NameComparison, VerifyTarget, VerifyTarget]] = []
    for name in sorted(by_name):
        target = by_name[name]
        name_refs = refs.get(name, _NameRefs())
        params = name_refs.shapes.shapes(1)[0].params  # the most common live shape
        direct = dataclasses.replace(
            target, params=params, model_names=[name], shapes=[], references=name_refs.references
        )
        proxy = _proxy_target(name, name_refs, proxy_endpoint, params)
        comparison = NameComparison(
            name, direct, name_refs.references, params, proxy.base_url, proxy.key_label
        )
        report.comparisons.append(comparison)
        if target.skip_reason:
            comparison.status, comparison.detail = SKIPPED, target.skip_reason
            continue
        pairs.append((comparison, proxy, direct))
    probes = [t for _, proxy, direct in pairs for t in (proxy, direct)]
    if on_targets is not None:
        on_targets(probes)
    results = await probe_all(
        probes, concurrency=concurrency, timeout_s=timeout_s, on_result=on_result
    )
    for i, (comparison, _, target) in enumerate(pairs):
        comparison.proxy, comparison.direct = results[2 * i], results[2 * i + 1]
        comparison.status, comparison.detail, comparison.hint = compare(
            comparison.model_name, target, comparison.proxy, comparison.direct
        )
    report.wall_ms = int((time.monotonic() - started) * 1000)
    if record:
        report.record_error = await insert_record(
            db, report.record(allow_skipped), report.started_at
        )
        report.recorded = report.record_error is None
    return report


async def last_comparison(db: AsyncDatabase[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest recorded ``verify --against-proxy`` run, for ``decommission``."""
    names = await db.list_collection_names(filter={"name": VERIFY_RUNS})
    if not names:
        return None
    found: dict[str, Any] | None = await db[VERIFY_RUNS].find_one(
        {"mode": MODE}, sort=[("finished_at", -1), ("_id", -1)]
    )
    return found
