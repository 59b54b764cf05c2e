"""Probing: one real streamed chat per target through the OpenAI SDK.

Every probe is bounded by one deadline (connect, first token and completion
together), concurrency is bounded by a semaphore, and a 429/5xx is retried at
most once after a short backoff inside that deadline. A well-formed stream that
ends is success; the text is never required. The probe records the response
``model`` field and the LiteLLM proxy's ``x-litellm-*`` headers (what
``verify --against-proxy`` compares), never the text.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from layra_migrate import redact
from layra_migrate.plan import PLACEHOLDER_KEY
from layra_migrate.verify.classify import (
    Progress,
    classify,
    hint,
    retry_delay,
    retryable,
    short,
)
from layra_migrate.verify.outcomes import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT_S,
    OK,
    PROTOCOL_ERROR,
    SKIPPED,
)
from layra_migrate.verify.shaping import request_kwargs
from layra_migrate.verify.targets import VerifyTarget, shape_label

# Response headers worth keeping: the LiteLLM proxy's (1.110.2, proxy/common_request_
# processing.py and litellm_core_utils/add_retry_fallback_headers.py) naming the
# deployment that answered. Older proxies send fewer or none; absence is tolerated.
LITELLM_HEADERS = (
    "x-litellm-model-name",
    "x-litellm-model-api-base",
    "x-litellm-model-id",
    "x-litellm-model-group",
    "x-litellm-attempted-fallbacks",
    "x-litellm-attempted-retries",
    "x-litellm-version",
)


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
    response_model: str | None = None  # the stream's ``model`` field
    upstream_headers: dict[str, str] = field(default_factory=dict)  # LITELLM_HEADERS present

    @property
    def ok(self) -> bool:
        return self.status == OK

    def as_dict(self) -> dict[str, Any]:
        t = self.target
        out: dict[str, Any] = {
            "provider": t.provider,
            "base_url": t.base_url,
            "model": t.model,
            "references": t.references,
            "status": self.status,
            "detail": redact.scrub(self.detail),
            "latency_ms": self.latency_ms,
            "first_token_ms": self.first_token_ms,
            "hint": redact.scrub(self.hint) or None,
            "attempts": self.attempts,
            "http_status": self.http_status,
            "usage": self.usage,
            "params": self.request or None,
            "api_key_env": t.api_key_env,
            "key": t.key_label,
        }
        if t.model_names:
            out["model_names"] = list(t.model_names)
        label = shape_label(t)
        if label is not None:
            out["shape"] = {
                "index": t.shape_index,
                "of": len(t.shapes),
                "references": t.shapes[t.shape_index - 1].references,
                "distinct": t.distinct_shapes,
                "label": label,
            }
        return out


@dataclass
class _Outcome:
    status: str
    detail: str
    http_status: int | None
    first_token_ms: int | None = None
    usage: dict[str, int] | None = None


async def _attempt(
    client: Any, kwargs: dict[str, Any], progress: Progress, started: float
) -> _Outcome:
    stream = await client.chat.completions.create(**kwargs)
    progress.phase = "stream"
    headers = stream.response.headers
    progress.headers = {
        k: redact.scrub(str(headers[k]))[:300]
        for k in LITELLM_HEADERS
        if headers.get(k) is not None
    }
    ctype = str(headers.get("content-type", "")).split(";")[0].strip()
    finished = False
    usage: dict[str, int] | None = None
    foreign = 0
    try:
        async for chunk in stream:
            choices = getattr(chunk, "choices", None)
            if getattr(chunk, "object", None) != "chat.completion.chunk" and not isinstance(
                choices, list
            ):
                foreign += 1
                continue
            progress.chunks += 1
            model = getattr(chunk, "model", None)
            if progress.response_model is None and isinstance(model, str) and model:
                progress.response_model = model
            for choice in choices or []:
                delta = getattr(choice, "delta", None)
                extra = getattr(delta, "model_extra", None) or {}
                text = (
                    getattr(delta, "content", None)
                    or getattr(delta, "reasoning_content", None)
                    or extra.get("reasoning_content")
                )
                if text and progress.first_token is None:
                    progress.first_token = time.monotonic()
                if getattr(choice, "finish_reason", None):
                    finished = True
            u = getattr(chunk, "usage", None)
            if u is not None:
                usage = {
                    k: int(v)
                    for k in ("prompt_tokens", "completion_tokens", "total_tokens")
                    if isinstance(v := getattr(u, k, None), int)
                }
            if progress.first_chunk is None:
                progress.first_chunk = time.monotonic()
    finally:
        await stream.close()
    # A stream without text (allowed) still has a first chunk to time.
    first = progress.first_token or progress.first_chunk
    first_ms = None if first is None else int((first - started) * 1000)
    if progress.chunks == 0:
        if foreign:
            return _Outcome(
                PROTOCOL_ERROR,
                f"{foreign} event(s), none an OpenAI chat chunk (another API's protocol?)",
                200,
            )
        if ctype == "application/json":
            reason = "one JSON object instead of a stream: the endpoint ignored stream=True"
        elif "html" in ctype:
            reason = "an HTML page, not a chat stream"
        else:
            reason = f"no chat chunks (content-type {ctype or 'none'}, empty or unparsable body)"
        return _Outcome(PROTOCOL_ERROR, f"HTTP 200 with {reason}", 200)
    if not finished and usage is None:
        return _Outcome(
            PROTOCOL_ERROR,
            f"stream ended after {progress.chunks} chunk(s) without "
            "finish_reason or usage (cut off?)",
            200,
        )
    return _Outcome(OK, "", 200, first_ms, usage)


async def probe(
    target: VerifyTarget, timeout_s: float = DEFAULT_TIMEOUT_S, http_client: Any = None
) -> ProbeResult:
    """Probe one target: at most two attempts (one retry on 429/5xx), one overall deadline.

    ``http_client`` (an ``openai.DefaultAsyncHttpxClient``) is shared by :func:`probe_all`:
    building one TLS context per target would cost more CPU than the probes themselves.
    """
    kwargs = request_kwargs(target.model, target.params)
    sent: dict[str, Any] = {
        k: kwargs[k] for k in ("temperature", "top_p", "max_tokens") if k in kwargs
    }
    if target.skip_reason:
        return ProbeResult(target, SKIPPED, target.skip_reason)
    if target.precheck_status:
        detail = target.precheck_detail or ""
        return ProbeResult(
            target,
            target.precheck_status,
            detail,
            hint(target.precheck_status, target, None, detail),
            request=sent,
        )
    import openai

    client = openai.AsyncOpenAI(
        api_key=target.api_key or PLACEHOLDER_KEY,
        base_url=target.base_url,
        max_retries=0,
        http_client=http_client,
        timeout=openai.Timeout(timeout_s + 1, connect=min(timeout_s, 10.0)),
    )
    started = time.monotonic()
    deadline = started + timeout_s
    attempts = 0
    notes: list[str] = []
    progress = Progress()
    try:
        while True:
            attempts += 1
            progress = Progress()
            attempt_start = time.monotonic()
            remaining = deadline - attempt_start
            try:
                outcome = await asyncio.wait_for(
                    _attempt(client, kwargs, progress, attempt_start), max(remaining, 0.001)
                )
            except Exception as exc:  # noqa: BLE001 - classified, never re-raised
                status, detail, http = classify(exc, progress, timeout_s)
                left = deadline - time.monotonic()
                delay = retry_delay(exc)
                if attempts == 1 and retryable(exc) and left > delay + 0.5:
                    notes.append(detail)
                    await asyncio.sleep(delay)
                    continue
                first = progress.first_token or progress.first_chunk
                outcome = _Outcome(
                    status,
                    detail,
                    http,
                    None if first is None else int((first - attempt_start) * 1000),
                )
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
    return ProbeResult(
        target,
        outcome.status,
        short(detail, 300),
        hint(outcome.status, target, outcome.http_status, detail),
        elapsed,
        outcome.first_token_ms,
        outcome.usage,
        attempts,
        outcome.http_status,
        sent,
        progress.response_model,
        dict(progress.headers),
    )


async def probe_all(
    targets: list[VerifyTarget],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_result: Callable[[ProbeResult], None] | None = None,
) -> list[ProbeResult]:
    """Probe every target, at most ``concurrency`` at a time; results in target order."""
    semaphore = asyncio.Semaphore(max(1, concurrency))
    http_client: Any = None
    if any(not (t.skip_reason or t.precheck_status) for t in targets):
        import openai

        # The SDK's own client and connection limits: the semaphore bounds concurrency.
        http_client = openai.DefaultAsyncHttpxClient(timeout=timeout_s + 1)

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
