"""Proxy URL normalisation: unit and property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from layra_migrate.errors import UsageError
from layra_migrate.proxy import ProxySet, normalise_url

PROXY = ProxySet.build()


@pytest.mark.parametrize(
    "url",
    [
        "http://litellm-proxy:4000/v1",
        "http://litellm-proxy:4000",
        "http://172.17.0.1:4000/v1",
        "http://localhost:4000/v1",
        "http://host.docker.internal:4000/v1",
        "HTTP://LiteLLM-Proxy:4000/v1/",
        "http://127.0.0.1:4000/",
        " http://litellm-proxy:4000/V1 ",
        "http://user:pw@litellm-proxy:4000/v1",
        "http://litellm-proxy:4000//v1//",
    ],
)
def test_proxy_spellings_match(url: str) -> None:
    assert PROXY.matches(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://litellm-proxy:4001/v1",
        "https://litellm-proxy:4000/v1",
        "https://api.deepseek.com",
        "http://localhost:11434/v1",
        "",
        None,
        "litellm-proxy:4000",
        "ftp://litellm-proxy:4000",
        "http://litellm-proxy:4000/v1/chat",
        4000,
        "http://[::1:4000/v1",
    ],
)
def test_non_proxy_urls_do_not_match(url: object) -> None:
    assert not PROXY.matches(url)


def test_extra_proxy_url_and_bad_flag() -> None:
    s = ProxySet.build(["https://gw.example.com/litellm/v1"])
    assert s.matches("https://GW.example.com:443/litellm")
    assert "https://gw.example.com/litellm/v1" in s.urls
    with pytest.raises(UsageError):
        ProxySet.build(["not a url"])


hosts = st.from_regex(r"[a-z][a-z0-9\-]{0,20}(\.[a-z]{2,6})?", fullmatch=True)
paths = st.lists(st.from_regex(r"[a-z0-9_\-]{1,8}", fullmatch=True), max_size=3).map(
    lambda parts: "".join("/" + p for p in parts)
)


@given(
    scheme=st.sampled_from(["http", "https"]),
    host=hosts,
    port=st.integers(1, 65535),
    path=paths,
    v1=st.booleans(),
    slash=st.booleans(),
    upper=st.booleans(),
)
def test_normalisation_ignores_spelling_variants(
    scheme: str, host: str, port: int, path: str, v1: bool, slash: bool, upper: bool
) -> None:
    base = f"{scheme}://{host}:{port}{path}"
    variant = base + ("/v1" if v1 else "") + ("/" if slash else "")
    if upper:
        variant = variant.replace(scheme, scheme.upper(), 1).replace(host, host.upper(), 1)
    if path.endswith("/v1"):
        return  # a path that itself ends in /v1 is covered by the explicit cases
    assert normalise_url(variant) == normalise_url(base)
    # idempotent: a normalised URL normalises to itself
    n = normalise_url(variant)
    assert n is not None and normalise_url(n) == n


@given(st.text(max_size=60))
def test_normalise_never_raises(text: str) -> None:
    result = normalise_url(text)
    assert result is None or result.startswith(("http://", "https://"))


@given(host=hosts, port=st.integers(1, 65535))
def test_different_ports_never_match(host: str, port: int) -> None:
    s = ProxySet.build([f"http://{host}:{port}/v1"], include_defaults=False)
    other = port + 1 if port < 65535 else port - 1
    assert not s.matches(f"http://{host}:{other}/v1")
