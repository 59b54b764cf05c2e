"""`verify --against-proxy`'s classification, as pure logic: what a proxy answer without
LiteLLM's headers (an older proxy) or with partial ones proves. The real-proxy cases are in
test_verify_against_proxy.py."""

from __future__ import annotations

from layra_migrate.verify.against_proxy import (
    DIFFERS,
    DIRECT_FAILS,
    PROXY_FAILS,
    PROXY_FELL_BACK,
    SAME,
    UNDETERMINED,
    compare,
)
from layra_migrate.verify.probing import ProbeResult
from layra_migrate.verify.targets import VerifyTarget

TARGET = VerifyTarget("openai", "https://api.openai.com/v1", "gpt-4o", api_key_env="OPENAI_API_KEY")
PROXY_T = VerifyTarget("litellm-proxy", "http://localhost:4000/v1", "smart")


def answer(
    target: VerifyTarget,
    status: str = "ok",
    model: str | None = None,
    headers: dict[str, str] | None = None,
) -> ProbeResult:
    return ProbeResult(
        target,
        status,
        "" if status == "ok" else f"{status} detail",
        response_model=model,
        upstream_headers=headers or {},
    )


def test_headers_decide_when_present() -> None:
    h = {
        "x-litellm-model-name": "openai/gpt-4o",
        "x-litellm-model-api-base": "https://api.openai.com/v1/",
        "x-litellm-attempted-fallbacks": "0",
    }
    status, _, hint = compare(
        "smart",
        TARGET,
        answer(PROXY_T, model="smart", headers=h),
        answer(TARGET, model="gpt-4o-2024-08-06"),
    )
    assert (status, hint) == (SAME, "")
    # another host is another upstream, even with the same model id
    other = {**h, "x-litellm-model-api-base": "https://eu.example.com/v1"}
    status, detail, _ = compare("smart", TARGET, answer(PROXY_T, headers=other), answer(TARGET))
    assert status == DIFFERS and "eu.example.com" in detail
    # another model id
    status, detail, _ = compare(
        "smart",
        TARGET,
        answer(PROXY_T, headers={**h, "x-litellm-model-name": "azure/gpt-4o-mini"}),
        answer(TARGET),
    )
    assert status == DIFFERS and "azure/gpt-4o-mini" in detail


def test_an_older_proxy_is_judged_on_its_model_field() -> None:
    # no x-litellm-* headers: the proxy passed the upstream's own model field through
    same = compare(
        "smart",
        TARGET,
        answer(PROXY_T, model="gpt-4o-2024-08-06"),
        answer(TARGET, model="gpt-4o-2024-08-06"),
    )
    assert same[0] == SAME
    differs = compare(
        "smart",
        TARGET,
        answer(PROXY_T, model="claude-3-5-sonnet"),
        answer(TARGET, model="gpt-4o-2024-08-06"),
    )
    assert differs[0] == DIFFERS and "claude-3-5-sonnet" in differs[1]
    # it echoes the alias and says nothing else: never called the same
    unknown = compare("smart", TARGET, answer(PROXY_T, model="smart"), answer(TARGET, model="x"))
    assert unknown[0] == UNDETERMINED and unknown[2]


def test_failures_and_fallbacks() -> None:
    fb = {"x-litellm-attempted-fallbacks": "2", "x-litellm-model-group": "cheap"}
    status, detail, hint = compare(
        "smart", TARGET, answer(PROXY_T, headers=fb), answer(TARGET, "server_error")
    )
    assert status == PROXY_FELL_BACK and "cheap" in detail and "fallback" in hint
    status, detail, _ = compare(
        "smart", TARGET, answer(PROXY_T, model="gpt-4o"), answer(TARGET, "auth_failed")
    )
    assert status == DIRECT_FAILS and "the proxy answered" in detail
    status, detail, _ = compare("smart", TARGET, answer(PROXY_T, "unreachable"), answer(TARGET))
    assert status == PROXY_FAILS
    # both fail: the direct call is what the cut-over depends on
    status, detail, _ = compare(
        "smart", TARGET, answer(PROXY_T, "timeout"), answer(TARGET, "model_not_found")
    )
    assert status == DIRECT_FAILS and "the proxy failed too: timeout" in detail
