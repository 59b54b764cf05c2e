"""Proxy URL normalisation and matching.

Layra's data holds the proxy URL in many spellings (with or without ``/v1``,
upper case, trailing slash, several host names). Every comparison in the tool
goes through :func:`normalise_url`, so the audit, the rewrite and decommission's
interlock agree on what "points at the proxy" means.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PROXY_PORT = 4000
DEFAULT_PROXY_HOSTS = (
    "litellm-proxy",
    "localhost",
    "127.0.0.1",
    "172.17.0.1",
    "host.docker.internal",
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_url(url: object) -> str | None:
    """Canonical form ``scheme://host:port/path`` or ``None`` when not an http(s) URL.

    Scheme and host are lower-cased, the default port is made explicit, user
    info, query and fragment are dropped, trailing slashes and one trailing
    ``/v1`` are removed (the OpenAI SDK and LiteLLM accept both).
    """
    if not isinstance(url, str):
        return None
    text = url.strip()
    if not text:
        return None
    if "://" not in text:
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return None
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        return None
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    path = parts.path
    while "//" in path:
        path = path.replace("//", "/")
    path = path.rstrip("/")
    if path.lower().endswith("/v1"):
        path = path[:-3].rstrip("/")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{path}"


def default_proxy_urls(port: int = DEFAULT_PROXY_PORT) -> list[str]:
    return [f"http://{h}:{port}/v1" for h in DEFAULT_PROXY_HOSTS]


@dataclass(frozen=True)
class ProxySet:
    """The set of URLs that mean "the LiteLLM proxy"."""

    urls: tuple[str, ...]
    normalised: frozenset[str]

    @classmethod
    def build(cls, extra: Iterable[str] = (), *, include_defaults: bool = True) -> ProxySet:
        urls: list[str] = default_proxy_urls() if include_defaults else []
        for u in extra:
            if normalise_url(u) is None:
                from layra_migrate.errors import UsageError

                raise UsageError(
                    f"--proxy-url {u!r} is not an http(s) URL",
                    hint="e.g. --proxy-url http://litellm:4000/v1",
                )
            if u not in urls:
                urls.append(u)
        return cls(tuple(urls), frozenset(n for n in map(normalise_url, urls) if n))

    def matches(self, url: object) -> bool:
        n = normalise_url(url)
        return n is not None and n in self.normalised
