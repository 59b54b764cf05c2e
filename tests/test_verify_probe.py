"""verify's probes: the real OpenAI SDK over real HTTP to the loopback provider stub.

No MongoDB here: targets are built directly, so these tests are fast and pin the
classification, the request shape, retries, deadlines and concurrency.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layra_migrate import redact
from layra_migrate.sandbox.provider_stub import ProviderStub
from layra_migrate.sandbox.servers import free_port
from layra_migrate.verify import (
    ProbeParams,
    VerifyTarget,
    config_params,
    probe,
    probe_all,
    request_kwargs,
)
from tests.conftest import ALL_CANARIES, assert_no_canary

KEY = "sk-CANARYdirectDEEPSEEK-0000"


@pytest.fixture(scope="module")
def stub() -> Iterator[ProviderStub]:
    with ProviderStub(
        behaviours={"deepseek-reasoner": "reasoning", "deepseek-chat": "ok", "o3-mini": "ok"},
        stall_s=15,
    ) as s:
        yield s


@pytest.fixture(autouse=True)
def _secrets() -> None:
    redact.register_secret(KEY)


def target(
    stub: ProviderStub, model: str, params: ProbeParams | None = None, key: str = KEY
) -> VerifyTarget:
    return VerifyTarget(
        "stub", stub.base_url, model, references=1, params=params or ProbeParams(), api_key=key
    )


EXPECTED = {
    "stub-ok": "ok",
    "stub-reasoning": "ok",
    "stub-empty": "ok",  # a well-formed stream without text is success
    "stub-json": "protocol_error",
    "stub-400": "bad_request",
    "stub-400-model": "model_not_found",
    "stub-401": "auth_failed",
    "stub-401-echo": "auth_failed",
    "stub-402": "auth_failed",
    "stub-403": "auth_failed",
    "stub-404": "model_not_found",
    "stub-404-html": "model_not_found",
    "stub-429": "rate_limited",
    "stub-500": "server_error",
    "stub-503": "server_error",
    "stub-429-once": "ok",
    "stub-503-once": "ok",
    "stub-stall": "timeout",
    "stub-stall-stream": "timeout",
    "stub-close": "protocol_error",
    "stub-truncated": "protocol_error",
    "stub-html": "protocol_error",
    "stub-blank": "protocol_error",
    "stub-malformed": "protocol_error",
    "stub-foreign": "protocol_error",
    "stub-stream-error": "server_error",
}


async def test_every_outcome_is_classified_within_one_timeout(stub: ProviderStub) -> None:
    stub.clear()
    targets = [target(stub, m) for m in EXPECTED]
    started = time.monotonic()
    results = await probe_all(targets, concurrency=len(targets), timeout_s=3.0)
    wall = time.monotonic() - started
    got = {r.target.model: r.status for r in results}
    assert got == EXPECTED
    assert wall < 3.0 * 1.8, f"{len(targets)} probes took {wall:.1f}s"
    for r in results:
        text = repr(r.as_dict())
        assert_no_canary(text)
        assert "api_key" not in r.as_dict() or r.as_dict().get("api_key") is None
        if r.status != "ok":
            assert r.detail and r.hint, r.target.model
        else:
            assert r.latency_ms is not None and r.first_token_ms is not None
    by = {r.target.model: r for r in results}
    assert by["stub-ok"].usage == {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}
    assert by["stub-401"].hint.startswith("key rejected")
    assert "mid-stream" in by["stub-close"].detail
    assert "stalled after 1 chunk" in by["stub-stall-stream"].detail
    assert by["stub-stall-stream"].first_token_ms is not None  # it did start streaming
    assert by["stub-stall"].detail.startswith("no response within")
    assert "ignored stream=True" in by["stub-json"].detail
    assert "HTML" in by["stub-html"].detail
    # retried once on 429/5xx, never more
    assert by["stub-429"].attempts == 2 and len(stub.requests_for("stub-429")) == 2
    assert by["stub-429-once"].attempts == 2 and "after 1 retry" in by["stub-429-once"].detail
    assert "retried once" in by["stub-429"].detail
    assert len(stub.requests_for("stub-401")) == 1
    assert len(stub.requests_for("stub-stall")) == 1


async def test_sdk_message_echoing_the_key_is_scrubbed(stub: ProviderStub) -> None:
    r = await probe(target(stub, "stub-401-echo"), 5.0)
    assert r.status == "auth_failed"
    assert KEY not in r.detail and "CANARY" not in r.detail
    assert "your api key" in r.detail  # the provider's message is kept, masked


async def test_request_has_the_shape_layra_sends(stub: ProviderStub) -> None:
    stub.clear()
    params = ProbeParams(temperature=0.3, max_tokens=None, top_p=None)
    r = await probe(target(stub, "deepseek-chat", params), 5.0)
    assert r.status == "ok", r.detail
    [req] = stub.requests_for("deepseek-chat")
    assert req.method == "POST" and req.path == "/v1/chat/completions"
    assert req.api_key == KEY
    body = req.body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.3
    assert "top_p" not in body
    assert "max_tokens" not in body  # Layra sends none when max_length is the default
    assert body["messages"][0]["role"] == "user"


async def test_configured_parameters_are_sent_verbatim(stub: ProviderStub) -> None:
    stub.clear()
    params = ProbeParams(temperature=0.7, max_tokens=4096, top_p=0.9)
    await probe(target(stub, "deepseek-chat", params), 5.0)
    [req] = stub.requests_for("deepseek-chat")
    assert (req.body["temperature"], req.body["max_tokens"], req.body["top_p"]) == (0.7, 4096, 0.9)


async def test_the_probe_adds_no_parameter_of_its_own(stub: ProviderStub) -> None:
    # Layra's request carries only what the configuration sets: no token budget of the
    # probe's (o-series and gpt-5 reject max_tokens; a reasoning model needs room).
    stub.clear()
    r = await probe(target(stub, "deepseek-reasoner"), 5.0)
    assert r.status == "ok" and r.first_token_ms is not None
    [req] = stub.requests_for("deepseek-reasoner")
    assert set(req.body) == {"model", "messages", "stream", "stream_options"}
    for name in ("gpt-oss-120b", "o3-mini", "gpt-5", "deepseek-chat"):
        assert set(request_kwargs(name, ProbeParams())) == {
            "model",
            "messages",
            "stream",
            "stream_options",
        }
    assert request_kwargs("o3-mini", ProbeParams(max_tokens=1024))["max_tokens"] == 1024


def test_config_params_read_both_spellings_and_ignore_minus_one() -> None:
    snake = {"temperature": 0.3, "max_length": 2048, "top_P": -1, "top_K": 5}
    camel = {"temperature": -1, "maxLength": -1, "topP": 0.8, "useTemperatureDefault": True}
    assert config_params(snake) == ProbeParams(0.3, 2048, None)
    assert config_params(camel) == ProbeParams(None, None, 0.8)
    # a UI flag that says "default" wins over the number stored beside it (FlowEditor sends -1)
    flagged = {
        "temperature": 0.7,
        "maxLength": 4096,
        "topP": 0.5,
        "useTemperatureDefault": True,
        "useMaxLengthDefault": True,
        "useTopPDefault": False,
    }
    assert config_params(flagged) == ProbeParams(None, None, 0.5)
    # Layra's clamps: temperature and top_P into [0, 1], max_length into [1024, 1048576]
    assert config_params({"temperature": 1.7, "max_length": 16, "top_P": -0.5}) == ProbeParams(
        1.0, 1024, 0.0
    )
    assert config_params({"temperature": -3, "max_length": 9_999_999, "top_P": 3}) == ProbeParams(
        0.0, 1048576, 1.0
    )
    assert config_params({"temperature": True, "max_length": "4096"}) == ProbeParams()
    assert config_params({}) == ProbeParams()


async def test_unreachable_port_fails_fast() -> None:
    port = free_port()
    t = VerifyTarget("local", f"http://127.0.0.1:{port}/v1", "m", api_key=KEY)
    started = time.monotonic()
    r = await probe(t, 10.0)
    assert r.status == "unreachable"
    assert "refused" in r.detail.lower() or "connect" in r.detail.lower()
    assert time.monotonic() - started < 5


async def test_stalled_targets_finish_in_about_one_timeout(stub: ProviderStub) -> None:
    timeout = 1.5
    targets = [target(stub, "stub-stall") for _ in range(8)]
    started = time.monotonic()
    results = await probe_all(targets, concurrency=8, timeout_s=timeout)
    wall = time.monotonic() - started
    assert [r.status for r in results] == ["timeout"] * 8
    assert wall < timeout * 1.8, f"8 stalled probes took {wall:.1f}s, not about {timeout}s"
    assert all(r.latency_ms is not None and r.latency_ms < timeout * 1000 + 500 for r in results)


async def test_concurrency_is_bounded(stub: ProviderStub) -> None:
    targets = [target(stub, "stub-ok@300") for _ in range(6)]
    started = time.monotonic()
    results = await probe_all(targets, concurrency=2, timeout_s=10)
    wall = time.monotonic() - started
    assert all(r.status == "ok" for r in results)
    assert wall >= 0.3 * 3 - 0.05, f"concurrency 2 let 6 probes finish in {wall:.2f}s"


async def test_skipped_and_precheck_targets_send_nothing(stub: ProviderStub) -> None:
    stub.clear()
    skipped = VerifyTarget("anthropic", stub.base_url, "stub-ok", skip_reason="not chat")
    nokey = VerifyTarget(
        "stub",
        stub.base_url,
        "stub-ok",
        precheck_status="auth_failed",
        precheck_detail="key variable X_API_KEY is not set; nothing was sent",
        api_key_env="X_API_KEY",
    )
    a, b = await probe_all([skipped, nokey], timeout_s=5)
    assert (a.status, b.status) == ("skipped", "auth_failed")
    assert "X_API_KEY" in b.hint
    await asyncio.sleep(0.05)
    assert stub.requests == []


def test_canaries_cover_the_probe_key() -> None:
    assert any(c in KEY for c in ALL_CANARIES)


def _self_signed(tmp: Path) -> ssl.SSLContext | None:
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    proc = subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        capture_output=True,
        timeout=60,
    )
    if proc.returncode != 0:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def test_tls_failure_is_unreachable(tmp_path: Path) -> None:
    ctx = _self_signed(tmp_path)
    if ctx is None:
        pytest.skip("openssl not available to make a self-signed certificate")
    with ProviderStub(ssl_context=ctx) as tls_stub:
        assert tls_stub.base_url.startswith("https://")
        r = await probe(VerifyTarget("local", tls_stub.base_url, "stub-ok", api_key=KEY), 10.0)
    assert r.status == "unreachable"
    assert r.detail.startswith("TLS failure"), r.detail
    assert tls_stub.requests == []


async def test_dns_failure_is_unreachable() -> None:
    t = VerifyTarget("nowhere", "http://no-such-host.invalid/v1", "m", api_key=KEY)
    r = await probe(t, 5.0)
    assert r.status in ("unreachable", "timeout"), r.detail  # a resolver may stall offline
    if r.status == "unreachable":
        assert r.hint.startswith("cannot connect")


def test_provider_of_known_hosts_and_non_chat_targets() -> None:
    from layra_migrate.verify import provider_of

    assert provider_of("https://api.deepseek.com") == ("deepseek", None)
    assert provider_of("https://api.openai.com/v1/") == ("openai", None)
    assert provider_of("http://localhost:11434/v1")[0] == "ollama"
    assert provider_of("https://generativelanguage.googleapis.com/v1beta/openai/")[0] == "gemini"
    name, reason = provider_of("https://api.anthropic.com/v1")
    assert name == "anthropic" and reason
    name, reason = provider_of("https://api.voyageai.com/v1")
    assert name == "voyage" and reason and "embeddings" in reason
    assert provider_of("http://vllm.internal:8000/v1") == ("vllm.internal", None)


async def test_plan_targets_keys_placeholders_and_grouping(tmp_path: Path) -> None:
    import yaml

    from layra_migrate.plan import PLACEHOLDER_KEY, read_plan
    from layra_migrate.settings import Environment
    from layra_migrate.verify import plan_targets

    def tgt(model: str, env: str | None, **extra: object) -> dict[str, object]:
        return {
            "provider": "openai",
            "base_url": "http://h:1/v1",
            "model": model,
            "api_key_env": env,
            **extra,
        }

    path = tmp_path / "plan.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "format": "layra-migrate/plan/v1",
                "proxy_urls": ["http://litellm-proxy:4000/v1"],
                "models": {
                    "a": {"references": 2, "target": tgt("m1", "K_ONE")},
                    "a-alias": {"references": 1, "target": tgt("m1", "K_ONE")},
                    "b": {"references": 1, "target": tgt("m2", "K_MISSING")},
                    "local": {"references": 1, "target": tgt("m3", None, key_required=False)},
                    "claude": {
                        "references": 1,
                        "target": {
                            "provider": "anthropic",
                            "base_url": "https://api.anthropic.com/v1",
                            "model": "c",
                            "api_key_env": "ANTHROPIC_API_KEY",
                        },
                    },
                    "none": {"references": 3, "target": None, "reason": "no route"},
                },
            }
        )
    )
    env = Environment({"K_ONE": "sk-CANARYenvPLANkey0000000000000"}, None)
    tset = await plan_targets(read_plan(path), env, None)
    by = {t.model: t for t in tset.targets}
    assert by["m1"].references == 3 and sorted(by["m1"].model_names) == ["a", "a-alias"]
    assert by["m1"].api_key == "sk-CANARYenvPLANkey0000000000000"
    assert "CANARY" not in repr(by["m1"])  # the key is kept out of repr
    assert by["m2"].precheck_status == "auth_failed" and by["m2"].api_key is None
    assert "K_MISSING is not set" in (by["m2"].precheck_detail or "")
    assert by["m3"].api_key == PLACEHOLDER_KEY and by["m3"].precheck_status is None
    assert by["c"].skip_reason and "Messages API" in by["c"].skip_reason
    assert by["none"].skip_reason == "unresolved in the plan: no route"
    assert redact.scrub("x sk-CANARYenvPLANkey0000000000000 y") == "x sk-...0000 y"


_value = st.one_of(
    st.just(-1),
    st.just(-1.0),
    st.floats(0, 2, allow_nan=False),
    st.integers(1, 8192),
    st.none(),
    st.booleans(),
    st.text(max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(
    temperature=_value,
    length=_value,
    top=_value,
    camel=st.booleans(),
    model=st.sampled_from(["deepseek-chat", "deepseek-reasoner", "gpt-4.1-mini", "o3-mini"]),
)
def test_parameters_are_sent_only_when_set(
    temperature: object, length: object, top: object, camel: bool, model: str
) -> None:
    cfg = (
        {"temperature": temperature, "maxLength": length, "topP": top}
        if camel
        else {"temperature": temperature, "max_length": length, "top_P": top}
    )
    kwargs = request_kwargs(model, config_params(cfg))

    def is_set(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and v != -1

    assert ("temperature" in kwargs) == is_set(temperature)
    assert ("top_p" in kwargs) == is_set(top)
    assert ("max_tokens" in kwargs) == is_set(length)
    if is_set(temperature):
        assert kwargs["temperature"] == min(max(float(temperature), 0.0), 1.0)  # type: ignore[arg-type]
    if is_set(length):
        assert kwargs["max_tokens"] == int(min(max(float(length), 1024), 1048576))  # type: ignore[arg-type]
    assert kwargs["stream"] is True and kwargs["stream_options"] == {"include_usage": True}
    assert -1 not in (kwargs.get("temperature"), kwargs.get("top_p"), kwargs.get("max_tokens"))
