"""Classification: an exception or a broken stream becomes one status, one scrubbed
detail line and one hint saying what to do. SDK messages go through
:func:`redact.scrub` because providers echo keys."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from layra_migrate import redact
from layra_migrate.verify.outcomes import (
    AUTH_FAILED,
    BAD_REQUEST,
    MAX_BACKOFF_S,
    MODEL_NOT_FOUND,
    PROTOCOL_ERROR,
    RATE_LIMITED,
    RETRY_BACKOFF_S,
    SERVER_ERROR,
    TIMEOUT,
    UNREACHABLE,
)

if TYPE_CHECKING:
    from layra_migrate.verify.targets import VerifyTarget

_MODEL_MISSING = re.compile(
    r"model[^.]{0,80}(not[ _]?(exist|found)|does not exist|unknown|not supported|no such)"
    r"|no such model|unknown model|model_not_found|invalid model",
    re.I,
)


class Progress:
    """What a probe has seen so far, so a deadline can say where it stopped."""

    def __init__(self) -> None:
        self.phase = "connect"
        self.chunks = 0
        self.first_chunk: float | None = None
        self.first_token: float | None = None
        self.headers: dict[str, str] = {}  # the response headers (lower-case names)
        self.response_model: str | None = None  # the first chunk's ``model`` field


def short(text: str, limit: int = 200) -> str:
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


def hint(status: str, target: VerifyTarget, http_status: int | None, detail: str) -> str:
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


def classify(
    exc: BaseException, progress: Progress, timeout_s: float
) -> tuple[str, str, int | None]:
    """(status, one-line scrubbed detail, HTTP status) for an exception from one attempt."""
    import json

    import openai

    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        message = _provider_message(exc)
        detail = short(f"HTTP {code}: {message}" if message else f"HTTP {code}")
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
        return PROTOCOL_ERROR, short(f"unexpected HTTP {code}: {message}"), code
    if isinstance(exc, (openai.APITimeoutError, asyncio.TimeoutError, TimeoutError)):
        if progress.phase == "connect":
            where = f"no response within {timeout_s:g}s"
        elif progress.chunks == 0:
            where = f"response headers but no first token within {timeout_s:g}s"
        else:
            where = (
                f"stream stalled after {progress.chunks} chunk(s); not finished in {timeout_s:g}s"
            )
        return TIMEOUT, where, None
    if isinstance(exc, openai.APIConnectionError):
        cause = _root_cause(exc)
        text = short(f"{cause.__class__.__name__}: {cause}" if cause is not exc else str(exc))
        if progress.phase != "connect":
            return (
                PROTOCOL_ERROR,
                short(f"connection closed mid-stream after {progress.chunks} chunk(s) ({text})"),
                200,
            )
        if cause is not None and ("SSL" in repr(cause) or "certificate" in str(cause).lower()):
            return UNREACHABLE, short(f"TLS failure: {text}"), None
        return UNREACHABLE, text, None
    if isinstance(exc, openai.APIError):  # an error event inside a 200 stream
        message = short(str(getattr(exc, "message", "") or exc))
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
    return PROTOCOL_ERROR, short(f"unexpected {exc.__class__.__name__}: {exc}"), 200


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


def retry_delay(exc: BaseException) -> float:
    response = getattr(exc, "response", None)
    raw = response.headers.get("retry-after") if response is not None else None
    try:
        delay = float(raw) if raw is not None else RETRY_BACKOFF_S
    except ValueError:
        delay = RETRY_BACKOFF_S
    return min(max(delay, 0.1), MAX_BACKOFF_S)


def retryable(exc: BaseException) -> bool:
    code = getattr(exc, "status_code", None)
    return isinstance(code, int) and (code == 429 or code >= 500)
