"""``verify``: one real test chat per distinct provider target, through the OpenAI SDK.

Targets come from the plan (what ``rewrite`` would write: test before touching
data) or from the database (what the app calls now, in all four places). A
target is a distinct (base URL, model id, key). Each is probed once with the
request shape Layra sends: ``stream=True``, ``stream_options.include_usage``,
and ``temperature``/``max_tokens``/``top_p`` only when a referencing
configuration sets them (not ``-1``). A well-formed stream that ends is
success; the text is never required.

Every probe is bounded by one deadline (connect, first token and completion
together), concurrency is bounded by a semaphore, and a 429/5xx is retried at
most once after a short backoff inside that deadline. Outcomes are classified
(:data:`STATUSES`); SDK messages go through :func:`redact.scrub` because
providers echo keys. Keys live only in :class:`VerifyTarget` (``repr=False``)
and in the SDK client; no result, record or message carries one.

This module never prints and never exits; the CLI renders the
:class:`VerifyReport`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from layra_migrate import redact
from layra_migrate.litellm.providers import PROVIDERS
from layra_migrate.locations import LOCATION_NAMES, LOCATIONS
from layra_migrate.plan import PLACEHOLDER_KEY
from layra_migrate.proxy import normalise_url
from layra_migrate.toolstate import VERIFY_RUNS

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from layra_migrate.plan import Plan
    from layra_migrate.proxy import ProxySet
    from layra_migrate.settings import Environment

SCHEMA = "layra-migrate/verify/v1"

OK = "ok"
AUTH_FAILED = "auth_failed"
MODEL_NOT_FOUND = "model_not_found"
RATE_LIMITED = "rate_limited"
SERVER_ERROR = "server_error"
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"
PROTOCOL_ERROR = "protocol_error"
BAD_REQUEST = "bad_request"  # extension of the v1 enum: a 400/422 the provider gave the parameters
SKIPPED = "skipped"
STATUSES = (OK, AUTH_FAILED, MODEL_NOT_FOUND, RATE_LIMITED, SERVER_ERROR, TIMEOUT, UNREACHABLE,
            PROTOCOL_ERROR, BAD_REQUEST, SKIPPED)

DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT_S = 30.0
PROBE_PROMPT = "Reply with the single word OK."
PROBE_MAX_TOKENS = 16
REASONING_MAX_TOKENS = 1024
RETRY_BACKOFF_S = 0.5
MAX_BACKOFF_S = 2.0

# Reasoning models spend tokens thinking before any text: give them room.
_REASONING = re.compile(r"reason|thinking|gpt-oss|(^|[-/])r1\b|qwq|(^|/)o\d|(^|/)gpt-5", re.I)
# OpenAI's o-series and gpt-5 reject max_tokens (they want max_completion_tokens): never add
# the probe's own budget to them; a configured max_length is still sent, as the app sends it.
_NO_MAX_TOKENS = re.compile(r"(^|/)(o\d|gpt-5)", re.I)
_MODEL_MISSING = re.compile(
    r"model[^.]{0,80}(not[ _]?(exist|found)|does not exist|unknown|not supported|no such)"
    r"|no such model|unknown model|model_not_found|invalid model", re.I)
# Hosts whose API is not OpenAI-compatible chat, beyond the provider catalog's base URLs.
_HOST_PROVIDERS = {"api.anthropic.com": "anthropic", "api.voyageai.com": "voyage",
                   "api.cohere.ai": "cohere", "api.cohere.com": "cohere", "ollama.com": "ollama"}

# Layra's parameter names, both spellings, per request parameter.
PARAM_FIELDS: dict[str, tuple[str, ...]] = {
    "temperature": ("temperature",),
    "max_tokens": ("max_length", "maxLength"),
    "top_p": ("top_P", "topP"),
}


# -- targets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeParams:
    """Parameters the referencing configurations set; ``None`` means not sent (``-1``)."""

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("temperature", self.temperature),
                                  ("max_tokens", self.max_tokens), ("top_p", self.top_p))
                if v is not None}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if value == -1 else float(value)


def config_params(cfg: dict[str, Any]) -> ProbeParams:
    """The parameters one model configuration makes Layra send, either spelling."""
    found: dict[str, Any] = {}
    for param, names in PARAM_FIELDS.items():
        for name in names:
            value = _number(cfg.get(name))
            if value is not None:
                found[param] = value
                break
    max_tokens = found.get("max_tokens")
    if max_tokens is not None:
        max_tokens = int(max_tokens) if max_tokens >= 1 else None
    return ProbeParams(found.get("temperature"), max_tokens, found.get("top_p"))


class _ParamTally:
    """Per target: the most common value each parameter is set to across its references."""

    def __init__(self) -> None:
        self.values: dict[str, Counter[Any]] = {k: Counter() for k in PARAM_FIELDS}

    def add(self, params: ProbeParams) -> None:
        for k, v in params.as_dict().items():
            self.values[k][v] += 1

    def result(self) -> ProbeParams:
        pick = {k: c.most_common(1)[0][0] if c else None for k, c in self.values.items()}
        return ProbeParams(pick["temperature"],
                           None if pick["max_tokens"] is None else int(pick["max_tokens"]),
                           pick["top_p"])


def is_reasoning_model(model: str) -> bool:
    return bool(_REASONING.search(model))


def request_kwargs(model: str, params: ProbeParams) -> dict[str, Any]:
    """The ``chat.completions.create`` arguments of a probe, shaped as Layra sends them."""
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROBE_PROMPT}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if params.temperature is not None:
        kwargs["temperature"] = params.temperature
    if params.top_p is not None:
        kwargs["top_p"] = params.top_p
    if params.max_tokens is not None:
        kwargs["max_tokens"] = params.max_tokens
    elif not _NO_MAX_TOKENS.search(model):
        reasoning = is_reasoning_model(model)
        kwargs["max_tokens"] = REASONING_MAX_TOKENS if reasoning else PROBE_MAX_TOKENS
    return kwargs


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


async def _scan(db: AsyncDatabase[dict[str, Any]], batch_size: int = 500) -> Any:
    """Every model configuration in the four places: a projected streaming scan."""
    for name in LOCATION_NAMES:
        loc = LOCATIONS[name]
        cursor = db[loc.collection].find(loc.candidate_filter, loc.projection(),
                                         batch_size=batch_size)
        async for doc in cursor:
            for ref in loc.references(doc):
                yield ref


def _key_of(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


async def database_targets(db: AsyncDatabase[dict[str, Any]], proxies: ProxySet) -> TargetSet:
    """Distinct direct targets the database holds now; proxied references are only counted."""
    found: dict[tuple[str, str, str | None], VerifyTarget] = {}
    tallies: dict[tuple[str, str, str | None], _ParamTally] = {}
    not_migrated = 0
    async for ref in _scan(db):
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
            tallies[ident] = _ParamTally()
        target.references += 1
        tallies[ident].add(config_params(ref.config))
    for ident, target in found.items():
        target.params = tallies[ident].result()
    return TargetSet(_sorted(found.values()), not_migrated)


def _new_database_target(url: Any, name: str, key: str | None) -> VerifyTarget:
    base = _url_key(url)
    if normalise_url(url) is None:
        shown = "empty" if not base else f"{base!r}, not an http(s) URL"
        return VerifyTarget("-", base, name, api_key=key, skip_reason=(
            f"model_url is {shown}: Layra needs a full http(s) URL (fix it in the UI or the plan)"))
    provider, unsupported = provider_of(base)
    target = VerifyTarget(provider, base, name, api_key=key, skip_reason=unsupported)
    if not name and unsupported is None:
        target.skip_reason = "no model name stored"
    elif key is None and unsupported is None:
        target.precheck_status = AUTH_FAILED
        target.precheck_detail = ("no api_key stored: Layra's OpenAI client refuses to call "
                                  "without one; nothing was sent")
    return target


async def plan_targets(plan: Plan, env: Environment,
                       db: AsyncDatabase[dict[str, Any]] | None) -> TargetSet:
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
            skipped.append(VerifyTarget("-", "", name, references=entry.references,
                                        model_names=[name], skip_reason=reason))
            continue
        ident = (_url_key(t.base_url), t.model, t.api_key_env)
        target = found.get(ident)
        if target is None:
            provider_label, _ = provider_of(t.base_url)
            spec = PROVIDERS.get(t.provider)
            unsupported = None
            if spec is not None and not spec.openai_chat:
                unsupported = spec.unsupported_reason or f"{t.provider} is not OpenAI-compatible"
            target = VerifyTarget(t.provider or provider_label, t.base_url, t.model,
                                  api_key_env=t.api_key_env, skip_reason=unsupported)
            value = env.get(t.api_key_env) if t.api_key_env else None
            if value:
                redact.register_secret(value)
                target.api_key = value
            elif t.key_required:
                target.precheck_status = AUTH_FAILED
                target.precheck_detail = (f"key variable {t.api_key_env} is not set; "
                                          "nothing was sent")
            else:
                target.api_key = PLACEHOLDER_KEY
            found[ident] = target
        target.model_names.append(name)
        target.references += entry.references
        by_name[name] = target
    if db is not None:
        counts: Counter[int] = Counter()
        tallies: dict[int, _ParamTally] = {}
        async for ref in _scan(db):
            name = ref.model_name
            if not isinstance(name, str) or name not in by_name or not proxy.matches(ref.model_url):
                continue
            tgt = by_name[name]
            counts[id(tgt)] += 1
            tallies.setdefault(id(tgt), _ParamTally()).add(config_params(ref.config))
        for tgt in found.values():
            if counts[id(tgt)]:
                tgt.references = counts[id(tgt)]
                tgt.params = tallies[id(tgt)].result()
    return TargetSet(_sorted(found.values()) + skipped)


def _sorted(targets: Any) -> list[VerifyTarget]:
    return sorted(targets, key=lambda t: (t.skip_reason is not None, t.provider, t.base_url,
                                          t.model, -t.references))


def filter_provider(targets: list[VerifyTarget], only: str | None) -> list[VerifyTarget]:
    if not only:
        return targets
    wanted = only.strip().lower()
    return [t for t in targets if t.provider.lower() == wanted]


# -- probing ---------------------------------------------------------------------------------


@dataclass
class ProbeResult:
    target: VerifyTarget
    status: str
    detail: str = ""
    hint: str = ""
    latency_ms: int | None = None
    first_token_ms: int | None = None
    usage: dict[str, int] | None = None
    attempts: int = 0
    http_status: int | None = None
    request: dict[str, Any] = field(default_factory=dict)  # parameters sent (no messages)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def as_dict(self) -> dict[str, Any]:
        t = self.target
        out: dict[str, Any] = {
            "provider": t.provider, "base_url": t.base_url, "model": t.model,
            "references": t.references, "status": self.status,
            "detail": redact.scrub(self.detail), "latency_ms": self.latency_ms,
            "first_token_ms": self.first_token_ms,
            "hint": redact.scrub(self.hint) or None, "attempts": self.attempts,
            "http_status": self.http_status, "usage": self.usage,
            "params": self.request or None, "api_key_env": t.api_key_env,
            "key": t.key_label,
        }
        if t.model_names:
            out["model_names"] = list(t.model_names)
        return out


class _Progress:
    """What a probe has seen so far, so a deadline can say where it stopped."""

    def __init__(self) -> None:
        self.phase = "connect"
        self.chunks = 0
        self.first_chunk: float | None = None
        self.first_token: float | None = None


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    text = redact.scrub(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _provider_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("msg") or err.get("detail")
            if msg:
                return str(msg)
        elif isinstance(err, str):
            return err
    response = getattr(exc, "response", None)
    ctype = ""
    text = ""
    if response is not None:
        ctype = str(response.headers.get("content-type", ""))
        try:
            text = response.text
        except Exception:  # noqa: BLE001 - a streamed body may be unread
            text = ""
    if "html" in ctype or text.lstrip().startswith("<"):
        return "an HTML error page"
    return text.strip() or ""


def _model_missing(exc: Any, message: str) -> bool:
    body = getattr(exc, "body", None)
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code") or code
    return code == "model_not_found" or bool(_MODEL_MISSING.search(message))


def _hint(status: str, target: VerifyTarget, http_status: int | None, detail: str) -> str:
    """One short line saying what to do (the detail says what happened)."""
    if status == AUTH_FAILED:
        if http_status == 402:
            return "no balance or quota: top up the account"
        if http_status == 403:
            return f"key lacks access to this model: check {target.key_hint}"
        if "not set" in detail:
            return f"export {target.api_key_env} (or put it in the --env-file)"
        if "no api_key stored" in detail:
            return "store a key for this model in Layra (or rewrite from the plan)"
        return f"key rejected: check {target.key_hint}"
    if status == MODEL_NOT_FOUND:
        if "HTML" in detail or not detail:
            return "check the base URL path (missing /v1?) and the model id"
        return "unknown model id: use the provider's own id"
    if status == RATE_LIMITED:
        return "rate limited after 1 retry: check quota, lower --concurrency"
    if status == SERVER_ERROR:
        return "provider-side error: retry later, check its status page"
    if status == TIMEOUT:
        return "raise --timeout, or check egress from this host"
    if status == UNREACHABLE:
        return "cannot connect: check host, port, DNS and TLS from this host"
    if status == PROTOCOL_ERROR and ("mid-stream" in detail or "cut off" in detail):
        return "stream broke off: check proxies or load balancers in between"
    if status == PROTOCOL_ERROR and "ignored stream=True" in detail:
        return "endpoint does not stream; Layra needs streaming chat"
    if status == PROTOCOL_ERROR:
        return "not an OpenAI API root: point base_url at it (often .../v1)"
    if status == BAD_REQUEST:
        return "provider rejects a parameter Layra sends (see detail)"
    return ""


def _classify(exc: BaseException, progress: _Progress,
              timeout_s: float) -> tuple[str, str, int | None]:
    """(status, one-line scrubbed detail, HTTP status) for an exception from one attempt."""
    import json

    import openai

    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        message = _provider_message(exc)
        detail = _short(f"HTTP {code}: {message}" if message else f"HTTP {code}")
        if code in (401, 402, 403):
            return AUTH_FAILED, detail, code
        if code == 404:
            return MODEL_NOT_FOUND, detail, code
        if code in (400, 422) and _model_missing(exc, message):
            return MODEL_NOT_FOUND, detail, code
        if code == 429:
            return RATE_LIMITED, detail, code
        if code >= 500:
            return SERVER_ERROR, detail, code
        if code in (400, 422):
            return BAD_REQUEST, detail, code
        return PROTOCOL_ERROR, _short(f"unexpected HTTP {code}: {message}"), code
    if isinstance(exc, (openai.APITimeoutError, asyncio.TimeoutError, TimeoutError)):
        if progress.phase == "connect":
            where = f"no response within {timeout_s:g}s"
        elif progress.chunks == 0:
            where = f"response headers but no first token within {timeout_s:g}s"
        else:
            where = (f"stream stalled after {progress.chunks} chunk(s); "
                     f"not finished in {timeout_s:g}s")
        return TIMEOUT, where, None
    if isinstance(exc, openai.APIConnectionError):
        cause = _root_cause(exc)
        text = _short(f"{cause.__class__.__name__}: {cause}" if cause is not exc else str(exc))
        if progress.phase != "connect":
            return PROTOCOL_ERROR, _short(
                f"connection closed mid-stream after {progress.chunks} chunk(s) ({text})"), 200
        if cause is not None and ("SSL" in repr(cause) or "certificate" in str(cause).lower()):
            return UNREACHABLE, _short(f"TLS failure: {text}"), None
        return UNREACHABLE, text, None
    if isinstance(exc, openai.APIError):  # an error event inside a 200 stream
        message = _short(str(getattr(exc, "message", "") or exc))
        detail = f"error event in the stream: {message}"
        if _model_missing(exc, message):
            return MODEL_NOT_FOUND, detail, 200
        if re.search(r"rate.?limit|quota", message, re.I):
            return RATE_LIMITED, detail, 200
        if re.search(r"api.?key|auth|unauthori[sz]ed", message, re.I):
            return AUTH_FAILED, detail, 200
        return SERVER_ERROR, detail, 200
    if isinstance(exc, json.JSONDecodeError):
        return PROTOCOL_ERROR, "malformed stream event: data is not JSON", 200
    return PROTOCOL_ERROR, _short(f"unexpected {exc.__class__.__name__}: {exc}"), 200


def _root_cause(exc: BaseException) -> BaseException:
    """The deepest cause with a message (``ConnectionRefusedError``, ``gaierror``, ``SSLError``)."""
    best = exc
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 8:
        if str(cur):
            best = cur
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return best


def _retry_delay(exc: BaseException) -> float:
    response = getattr(exc, "response", None)
    raw = response.headers.get("retry-after") if response is not None else None
    try:
        delay = float(raw) if raw is not None else RETRY_BACKOFF_S
    except ValueError:
        delay = RETRY_BACKOFF_S
    return min(max(delay, 0.1), MAX_BACKOFF_S)


def _retryable(exc: BaseException) -> bool:
    code = getattr(exc, "status_code", None)
    return isinstance(code, int) and (code == 429 or code >= 500)


@dataclass
class _Outcome:
    status: str
    detail: str
    http_status: int | None
    first_token_ms: int | None = None
    usage: dict[str, int] | None = None


async def _attempt(client: Any, kwargs: dict[str, Any], progress: _Progress,
                   started: float) -> _Outcome:
    stream = await client.chat.completions.create(**kwargs)
    progress.phase = "stream"
    ctype = str(stream.response.headers.get("content-type", "")).split(";")[0].strip()
    finished = False
    usage: dict[str, int] | None = None
    foreign = 0
    try:
        async for chunk in stream:
            choices = getattr(chunk, "choices", None)
            if getattr(chunk, "object", None) != "chat.completion.chunk" and not isinstance(
                    choices, list):
                foreign += 1
                continue
            progress.chunks += 1
            for choice in choices or []:
                delta = getattr(choice, "delta", None)
                extra = getattr(delta, "model_extra", None) or {}
                text = (getattr(delta, "content", None)
                        or getattr(delta, "reasoning_content", None)
                        or extra.get("reasoning_content"))
                if text and progress.first_token is None:
                    progress.first_token = time.monotonic()
                if getattr(choice, "finish_reason", None):
                    finished = True
            u = getattr(chunk, "usage", None)
            if u is not None:
                usage = {k: int(v) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
                         if isinstance(v := getattr(u, k, None), int)}
            if progress.first_chunk is None:
                progress.first_chunk = time.monotonic()
    finally:
        await stream.close()
    # A stream without text (allowed) still has a first chunk to time.
    first = progress.first_token or progress.first_chunk
    first_ms = None if first is None else int((first - started) * 1000)
    if progress.chunks == 0:
        if foreign:
            return _Outcome(PROTOCOL_ERROR, f"{foreign} event(s), none an OpenAI chat chunk "
                            "(another API's protocol?)", 200)
        if ctype == "application/json":
            reason = "one JSON object instead of a stream: the endpoint ignored stream=True"
        elif "html" in ctype:
            reason = "an HTML page, not a chat stream"
        else:
            reason = f"no chat chunks (content-type {ctype or 'none'}, empty or unparsable body)"
        return _Outcome(PROTOCOL_ERROR, f"HTTP 200 with {reason}", 200)
    if not finished and usage is None:
        return _Outcome(PROTOCOL_ERROR, f"stream ended after {progress.chunks} chunk(s) without "
                        "finish_reason or usage (cut off?)", 200)
    return _Outcome(OK, "", 200, first_ms, usage)


async def probe(target: VerifyTarget, timeout_s: float = DEFAULT_TIMEOUT_S,
                http_client: Any = None) -> ProbeResult:
    """Probe one target: at most two attempts (one retry on 429/5xx), one overall deadline.

    ``http_client`` (an ``openai.DefaultAsyncHttpxClient``) is shared by :func:`probe_all`:
    building one TLS context per target would cost more CPU than the probes themselves.
    """
    kwargs = request_kwargs(target.model, target.params)
    sent: dict[str, Any] = {k: kwargs[k] for k in ("temperature", "top_p", "max_tokens")
                            if k in kwargs}
    if target.skip_reason:
        return ProbeResult(target, SKIPPED, target.skip_reason)
    if target.precheck_status:
        detail = target.precheck_detail or ""
        return ProbeResult(target, target.precheck_status, detail,
                           _hint(target.precheck_status, target, None, detail), request=sent)
    import openai

    client = openai.AsyncOpenAI(api_key=target.api_key or PLACEHOLDER_KEY,
                                base_url=target.base_url, max_retries=0, http_client=http_client,
                                timeout=openai.Timeout(timeout_s + 1, connect=min(timeout_s, 10.0)))
    started = time.monotonic()
    deadline = started + timeout_s
    attempts = 0
    notes: list[str] = []
    try:
        while True:
            attempts += 1
            progress = _Progress()
            attempt_start = time.monotonic()
            remaining = deadline - attempt_start
            try:
                outcome = await asyncio.wait_for(
                    _attempt(client, kwargs, progress, attempt_start), max(remaining, 0.001))
            except Exception as exc:  # noqa: BLE001 - classified, never re-raised
                status, detail, http = _classify(exc, progress, timeout_s)
                left = deadline - time.monotonic()
                delay = _retry_delay(exc)
                if attempts == 1 and _retryable(exc) and left > delay + 0.5:
                    notes.append(detail)
                    await asyncio.sleep(delay)
                    continue
                first = progress.first_token or progress.first_chunk
                outcome = _Outcome(status, detail, http,
                                   None if first is None else int((first - attempt_start) * 1000))
            break
    finally:
        if http_client is None:  # a shared client is closed by its owner
            try:
                await client.close()
            except Exception:  # noqa: BLE001 - closing must not mask the outcome
                pass
    detail = outcome.detail
    if attempts > 1:
        earlier = notes[0] if notes else ""
        if not detail:
            detail = f"ok after 1 retry (first attempt: {earlier})"
        elif detail == earlier:
            detail = f"{detail} (twice: retried once)"
        else:
            detail = f"{detail} (after 1 retry; first attempt: {earlier})"
    elapsed = int((time.monotonic() - started) * 1000)
    return ProbeResult(target, outcome.status, _short(detail, 300),
                       _hint(outcome.status, target, outcome.http_status, detail),
                       elapsed, outcome.first_token_ms, outcome.usage, attempts,
                       outcome.http_status, sent)


async def probe_all(targets: list[VerifyTarget], *, concurrency: int = DEFAULT_CONCURRENCY,
                    timeout_s: float = DEFAULT_TIMEOUT_S,
                    on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
    """Probe every target, at most ``concurrency`` at a time; results in target order."""
    semaphore = asyncio.Semaphore(max(1, concurrency))
    http_client: Any = None
    if any(not (t.skip_reason or t.precheck_status) for t in targets):
        import openai

        limit = max(1, concurrency)
        http_client = openai.DefaultAsyncHttpxClient(
            limits=_limits(limit), timeout=timeout_s + 1)

    async def one(t: VerifyTarget) -> ProbeResult:
        if t.skip_reason or t.precheck_status:
            result = await probe(t, timeout_s)
        else:
            async with semaphore:
                result = await probe(t, timeout_s, http_client)
        if on_result is not None:
            on_result(result)
        return result

    try:
        return list(await asyncio.gather(*(one(t) for t in targets)))
    finally:
        if http_client is not None:
            await http_client.aclose()


def _limits(n: int) -> Any:
    import httpx2

    return httpx2.Limits(max_connections=n * 2, max_keepalive_connections=n)


# -- the run ---------------------------------------------------------------------------------


@dataclass
class VerifyReport:
    source: str  # "plan" | "database"
    database: str
    results: list[ProbeResult]
    not_migrated: int = 0
    plan_path: str | None = None
    only: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    wall_ms: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S
    concurrency: int = DEFAULT_CONCURRENCY
    recorded: bool = False
    record_error: str | None = None

    @property
    def ok(self) -> int:
        return sum(1 for r in self.results if r.status == OK)

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.results if r.status == SKIPPED)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if r.status not in (OK, SKIPPED))

    def passed(self, allow_skipped: bool = False) -> bool:
        return self.failed == 0 and (allow_skipped or self.skipped == 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "source": self.source, "database": self.database,
            "plan": self.plan_path, "only": self.only,
            "targets": [r.as_dict() for r in self.results],
            "ok": self.ok, "failed": self.failed, "skipped": self.skipped,
            "not_migrated": self.not_migrated, "timeout_s": self.timeout_s,
            "concurrency": self.concurrency, "wall_ms": self.wall_ms,
            "recorded": self.recorded,
        }

    def record(self, allow_skipped: bool) -> dict[str, Any]:
        """The VERIFY_RUNS document: per-target outcome, URLs and models, never keys."""
        return {
            "source": self.source, "database": self.database, "plan": self.plan_path,
            "only": self.only, "at": self.started_at, "wall_ms": self.wall_ms,
            "passed": self.passed(allow_skipped), "allow_skipped": allow_skipped,
            "ok": self.ok, "failed": self.failed, "skipped": self.skipped,
            "not_migrated": self.not_migrated,
            "targets": [{
                "provider": r.target.provider, "base_url": r.target.base_url,
                "normalised_url": normalise_url(r.target.base_url), "model": r.target.model,
                "references": r.target.references, "status": r.status,
                "detail": redact.scrub(r.detail), "latency_ms": r.latency_ms,
                "api_key_env": r.target.api_key_env,
            } for r in self.results],
        }


async def record_run(db: AsyncDatabase[dict[str, Any]], report: VerifyReport,
                     allow_skipped: bool) -> None:
    """Insert the run into ``layra_migrate_verify``.

    A server that refuses the write (a read-only user) does not fail the
    verification: the report carries ``record_error`` and the CLI warns.
    """
    from pymongo.errors import OperationFailure

    doc = redact.scrub_obj(report.record(allow_skipped))
    doc["at"] = doc["started_at"] = report.started_at.replace(tzinfo=None)
    doc["finished_at"] = datetime.now(UTC).replace(tzinfo=None)
    try:
        await db[VERIFY_RUNS].insert_one(doc)
    except OperationFailure as exc:
        report.record_error = redact.scrub(
            f"run not recorded in {VERIFY_RUNS}: {exc.__class__.__name__} {exc.code}")
    else:
        report.recorded = True


async def last_verify_run(db: AsyncDatabase[dict[str, Any]],
                          source: str | None = None) -> dict[str, Any] | None:
    """The most recent recorded run (optionally of one source), for ``decommission``.

    Fields: ``source``, ``at``/``started_at``/``finished_at`` (UTC), ``passed``,
    ``ok``/``failed``/``skipped``, ``not_migrated``, ``targets`` [{provider, base_url,
    normalised_url, model, references, status, detail, latency_ms, api_key_env}].
    Never keys.
    """
    query: dict[str, Any] = {} if source is None else {"source": source}
    return await db[VERIFY_RUNS].find_one(query, sort=[("finished_at", -1), ("_id", -1)])


async def run_verify(
    db: AsyncDatabase[dict[str, Any]],
    database: str,
    *,
    proxies: ProxySet,
    env: Environment,
    plan: Plan | None = None,
    only: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    allow_skipped: bool = False,
    on_targets: Callable[[list[VerifyTarget]], None] | None = None,
    on_result: Callable[[ProbeResult], None] | None = None,
    record: bool = True,
) -> VerifyReport:
    """Collect the targets, probe them, record the run in ``layra_migrate_verify``."""
    from layra_migrate.errors import UsageError

    started = time.monotonic()
    report = VerifyReport("plan" if plan is not None else "database", database, [],
                          plan_path=str(plan.path) if plan is not None and plan.path else None,
                          only=only, timeout_s=timeout_s, concurrency=concurrency)
    if plan is not None:
        # The same staleness rule as rewrite: the audit's names, the plan module's check.
        from layra_migrate.audit import run_audit
        from layra_migrate.plan import check_fresh

        check_fresh(plan, await run_audit(db, plan.proxy, None, env))
    tset = await plan_targets(plan, env, db) if plan is not None else \
        await database_targets(db, proxies)
    report.not_migrated = tset.not_migrated
    targets = filter_provider(tset.targets, only)
    if only and not targets:
        known = sorted({t.provider for t in tset.targets if t.provider != "-"})
        raise UsageError(f"no target of provider {only!r}",
                         hint=f"providers here: {', '.join(known) or 'none'}")
    if on_targets is not None:
        on_targets(targets)
    report.results = await probe_all(targets, concurrency=concurrency, timeout_s=timeout_s,
                                     on_result=on_result)
    report.wall_ms = int((time.monotonic() - started) * 1000)
    if record:
        await record_run(db, report, allow_skipped)
    return report
