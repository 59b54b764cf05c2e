"""The one place that masks secrets.

Every output path (Rich, JSON, logs, exception text, plan, ledger, manifests)
goes through :func:`scrub` or one of the maskers here. Known secret values
(keys read from the environment, passwords in URIs) are registered with
:func:`register_secret` when they are read, so even a value that reaches an
unexpected place (an SDK exception echoing a header) is masked.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "****"
_MIN_TAIL_LEN = 12  # shorter secrets are masked entirely: a 4-char tail would be too much

_lock = threading.Lock()
_secrets: set[str] = set()

# Key-shaped tokens masked even when not registered: OpenAI/LiteLLM style
# (sk-..., sk-proj-...), Google (AIza...), bearer tokens in headers.
_KEY_PATTERNS = [
    re.compile(r"\bsk-(?:proj-|ant-|or-v1-)?[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}"),
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9_\-\.=:/+]{8,})"),
]
# scheme://user:password@host  ->  scheme://user:****@host
_URL_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)([^\s@/]+)(@)")


def mask_secret(value: Any) -> str | None:
    """Mask a key: ``sk-...abcd`` style, keeping at most the last 4 characters.

    ``None`` stays ``None`` and ``""`` stays ``""`` (both are facts worth
    showing); anything shorter than 12 characters is masked completely.
    """
    if value is None:
        return None
    text = str(value)
    if text == "":
        return ""
    prefix = ""
    for p in ("sk-proj-", "sk-ant-", "sk-"):
        if text.startswith(p):
            prefix = p
            break
    if len(text) < _MIN_TAIL_LEN:
        return MASK
    return f"{prefix}...{text[-4:]}"


def mask_url(url: Any) -> Any:
    """Mask the password (and any key-like query value) inside a URL."""
    if not isinstance(url, str) or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL_CREDENTIALS.sub(r"\1" + MASK + r"\3", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}{':' + MASK if sep else ''}@{hostport}"
    query = parts.query
    if query:
        query = re.sub(
            r"(?i)((?:api[_-]?key|key|token|password|secret)=)([^&]+)", r"\1" + MASK, query
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def register_secret(value: Any) -> None:
    """Remember a secret value so :func:`scrub` removes it from any text."""
    if not isinstance(value, str):
        return
    candidates = {value, quote(value, safe=""), unquote(value)}
    with _lock:
        for c in candidates:
            if len(c) >= 4:
                _secrets.add(c)


def register_secrets(values: Iterable[Any]) -> None:
    for v in values:
        register_secret(v)


def scrub(text: str) -> str:
    """Remove every registered secret and every key-shaped token from text."""
    if not text:
        return text
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for s in known:
        if s in text:
            text = text.replace(s, mask_secret(s) or MASK)
    text = _URL_CREDENTIALS.sub(r"\1" + MASK + r"\3", text)
    for pattern in _KEY_PATTERNS:
        if pattern.groups == 2:
            text = pattern.sub(lambda m: m.group(1) + (mask_secret(m.group(2)) or MASK), text)
        else:
            text = pattern.sub(lambda m: mask_secret(m.group(0)) or MASK, text)
    return text


def scrub_obj(obj: Any) -> Any:
    """Apply :func:`scrub` to every string inside a JSON-like structure."""
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {k: scrub_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub_obj(v) for v in obj]
    return obj


KEY_FIELDS = frozenset({"api_key", "apiKey", "key", "password", "master_key", "token"})


def mask_fields(doc: Any) -> Any:
    """Mask the values of key-named fields inside a document (for diffs)."""
    if isinstance(doc, dict):
        return {
            k: (mask_secret(v) if k in KEY_FIELDS and isinstance(v, str) else mask_fields(v))
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [mask_fields(v) for v in doc]
    return doc
