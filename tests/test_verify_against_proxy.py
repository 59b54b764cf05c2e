"""`verify --against-proxy` against a REAL LiteLLM proxy (the pinned test-only oracle,
`litellm --config` on loopback) in front of the OpenAI-compatible provider stub.

The proxy runs the operator's real config; `audit` was given a file that differs from it
in one route (as happens when the running proxy was edited after the file was copied).
Layra's documents point every name at `http://litellm-proxy:4000/v1` (the compose URL, not
reachable from here) with the proxy's master key; `--proxy-endpoint` gives the loopback URL.

Names: `chat-a` (plain route: same), `alias-a` (a model_group_alias of chat-a: same),
`chat-p` (its primary deployment answers 500, the proxy falls back to `chat-fb`:
proxy_fell_back), `chat-d` (the proxy routes it to model-d2, the audited file to model-d:
differs), `chat-k` (the operator's key variable holds a wrong key: direct_fails).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from layra_migrate.sandbox.provider_stub import ProviderStub
from layra_migrate.sandbox.servers import free_port
from tests.conftest import assert_no_canary

ORACLE_VERSION = "1.110.2"
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "schemas" / "verify.v1.json"
MASTER = "sk-CANARYmasterKEY-proxy-7"  # what Layra's documents hold (the proxy's master key)
UPSTREAM = "sk-CANARYenvUPSTREAM-good-1"  # the provider key (stub accepts only this one)
WRONG = "sk-CANARYenvWRONG-key-0002"
COMPOSE_URL = "http://litellm-proxy:4000/v1"
NAMES = ("alias-a", "chat-a", "chat-d", "chat-k", "chat-p")


def _oracle_missing() -> str | None:
    try:
        version = metadata.version("litellm")
    except metadata.PackageNotFoundError:
        return "litellm is not installed"
    if version != ORACLE_VERSION:
        return f"litellm {version} is installed, the oracle is {ORACLE_VERSION}"
    exe = Path(sys.executable).with_name("litellm")
    if not exe.exists() and shutil.which("litellm") is None:
        return "the litellm console script is missing"
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        return f"the proxy's runtime dependencies are missing ({exc.name})"
    return None


def _require_oracle() -> None:
    missing = _oracle_missing()
    if missing is None:
        return
    reason = (
        f"LiteLLM proxy oracle unavailable: {missing}; install it with "
        "pip install -e '.[test,oracle]' (scripts/test.sh does)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _route(
    name: str, model: str, key_var: str = "UPSTREAM_KEY", base_var: str = "STUB_BASE"
) -> dict[str, Any]:
    return {
        "model_name": name,
        "litellm_params": {
            "model": f"openai/{model}",
            "api_base": f"os.environ/{base_var}",
            "api_key": f"os.environ/{key_var}",
        },
    }


def proxy_config(*, chat_d_model: str) -> dict[str, Any]:
    return {
        "model_list": [
            _route("chat-a", "model-a"),
            _route("chat-p", "model-broken"),
            _route("chat-fb", "model-fb"),
            _route("chat-d", chat_d_model),
            _route("chat-k", "model-k", key_var="K_KEY"),
        ],
        "router_settings": {
            "model_group_alias": {"alias-a": "chat-a"},
            "fallbacks": [{"chat-p": ["chat-fb"]}],
            "num_retries": 0,
        },
        "litellm_settings": {"num_retries": 0, "request_timeout": 20},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }


@pytest.fixture(scope="module")
def stub() -> Iterator[ProviderStub]:
    with ProviderStub(behaviours={"model-broken": "500"}, valid_keys=frozenset({UPSTREAM})) as s:
        yield s


class RunningProxy:
    """``litellm --config`` started at once; :meth:`url` waits until it is live, so the
    proxy's start-up (tens of seconds of imports) overlaps MongoDB's and the audit's."""

    def __init__(self, stub: ProviderStub, work: Path) -> None:
        self.work = work
        config = work / "config.yaml"
        config.write_text(yaml.safe_dump(proxy_config(chat_d_model="model-d2")), encoding="utf-8")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM", "OPENAI"))}
        env.update(
            {
                "STUB_BASE": stub.base_url,
                "UPSTREAM_KEY": UPSTREAM,
                "K_KEY": UPSTREAM,
                "LITELLM_MASTER_KEY": MASTER,
                # loopback only: the bundled model cost map, no telemetry, no database
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_TELEMETRY": "False",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
            }
        )
        exe = Path(sys.executable).with_name("litellm")
        self.log = (work / "proxy.log").open("wb")
        self.proc = subprocess.Popen(
            [
                str(exe) if exe.exists() else "litellm",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--num_workers",
                "1",
            ],
            env=env,
            cwd=work,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{port}"
        self.live = False

    def url(self) -> str:
        deadline = time.monotonic() + 150
        while not self.live:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"litellm --config exited {self.proc.returncode}: "
                    + (self.work / "proxy.log").read_text(errors="replace")[-2000:]
                )
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{self.base}/health/liveliness", timeout=1)
                self.live = r.status_code == 200
                if self.live:
                    break
            if time.monotonic() > deadline:
                pytest.fail("litellm --config did not become live within 150 s")
            time.sleep(0.25)
        return f"{self.base}/v1"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.fixture(scope="module")
def running_proxy(
    stub: ProviderStub, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningProxy]:
    _require_oracle()
    handle = RunningProxy(stub, tmp_path_factory.mktemp("litellm-proxy"))
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def proxy(running_proxy: RunningProxy) -> str:
    """The live proxy's /v1 URL (it runs its own config: chat-d -> model-d2)."""
    return running_proxy.url()


def snake(name: str, url: str, key: str, **params: Any) -> dict[str, Any]:
    cfg = {
        "model_id": f"m_{name}",
        "model_name": name,
        "model_url": url,
        "api_key": key,
        "temperature": -1,
        "max_length": -1,
        "top_P": -1,
        "top_K": -1,
    }
    cfg.update(params)
    return cfg


def seed(db: Any) -> None:
    db.model_config.insert_one(
        {
            "username": "thesis",
            "selected_model": "m_chat-a",
            "models": [snake(n, COMPOSE_URL, MASTER) for n in NAMES],
        }
    )
    # chat-a's workflow sends temperature 0.3 (twice: the most common shape); the UI flag
    # says "default" for max length, so its stored 4096 is never sent
    db.workflows.insert_one(
        {
            "workflow_id": "wf",
            "username": "thesis",
            "nodes": [
                {
                    "id": f"n{i}",
                    "type": "vlm",
                    "data": {
                        "nodeType": "vlm",
                        "modelConfig": {
                            "modelName": "chat-a",
                            "modelURL": COMPOSE_URL,
                            "apiKey": MASTER,
                            "temperature": 0.3,
                            "maxLength": 4096,
                            "useMaxLengthDefault": True,
                            "topP": -1,
                        },
                    },
                }
                for i in range(2)
            ],
        }
    )
    # a soft-deleted conversation never shapes a probe (and its key is never used)
    for i in range(3):
        db.conversations.insert_one(
            {
                "conversation_id": f"gone{i}",
                "username": "thesis",
                "is_delete": True,
                "model_config": snake(
                    "chat-a", COMPOSE_URL, "sk-CANARYvirtualKEY-gone", temperature=0.9, top_P=0.1
                ),
            }
        )


@pytest.fixture
def invoke(mongo_uri: str, db_name: str, tmp_path: Path) -> Any:
    """The CLI in process (Typer's CliRunner), against this test's database."""
    from typer.testing import CliRunner

    from layra_migrate.cli import app

    def _run(*args: str, env: dict[str, str] | None = None) -> Any:
        full = {
            "LAYRA_MIGRATE_MONGO_URI": mongo_uri,
            "LAYRA_MIGRATE_DB": db_name,
            "NO_COLOR": "1",
            "COLUMNS": "200",
            **(env or {}),
        }
        old = Path.cwd()
        os.chdir(tmp_path)  # no stray ./.env
        try:
            return CliRunner().invoke(app, list(args), env=full, catch_exceptions=False)
        finally:
            os.chdir(old)

    return _run


@pytest.fixture
def plan(db: Any, invoke: Any, stub: ProviderStub, tmp_path: Path) -> Path:
    """audit --plan-out on the file the operator gave audit: chat-d -> model-d there."""
    seed(db)
    audited = tmp_path / "audited-config.yaml"
    audited.write_text(yaml.safe_dump(proxy_config(chat_d_model="model-d")), encoding="utf-8")
    out = tmp_path / "plan.yaml"
    r = invoke(
        "audit",
        "--litellm-config",
        str(audited),
        "--plan-out",
        str(out),
        "--json",
        env=operator_env(stub),
    )
    assert r.exit_code == 0, r.output
    resolved = {m["model_name"]: m["resolution"] for m in json.loads(r.stdout)["models"]}
    assert {n: resolved[n]["model"] for n in NAMES} == {
        "alias-a": "model-a",
        "chat-a": "model-a",
        "chat-d": "model-d",
        "chat-k": "model-k",
        "chat-p": "model-broken",
    }
    return out


def operator_env(stub: ProviderStub) -> dict[str, str]:
    # the operator's environment: the right provider key, but a wrong one in K_KEY
    return {
        "STUB_BASE": stub.base_url,
        "UPSTREAM_KEY": UPSTREAM,
        "K_KEY": WRONG,
        "LITELLM_MASTER_KEY": MASTER,
    }


def layra_state(db: Any) -> dict[str, list[Any]]:
    return {
        c: list(db[c].find({}, sort=[("_id", 1)]))
        for c in ("model_config", "conversations", "workflows", "nodes")
    }


def test_each_name_is_classified_against_the_real_proxy(
    running_proxy: RunningProxy, db: Any, invoke: Any, plan: Path, proxy: str, stub: ProviderStub
) -> None:
    import jsonschema

    before = layra_state(db)
    stub.clear()
    r = invoke(
        "verify",
        "--plan",
        str(plan),
        "--against-proxy",
        "--proxy-endpoint",
        proxy,
        "--json",
        "--timeout",
        "20",
        env=operator_env(stub),
    )
    assert r.exit_code == 5, r.output
    data = json.loads(r.stdout)
    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    got = {n["model_name"]: n for n in data["names"]}
    assert {n: got[n]["status"] for n in NAMES} == {
        "chat-a": "same",
        "alias-a": "same",
        "chat-p": "proxy_fell_back",
        "chat-d": "differs",
        "chat-k": "direct_fails",
    }
    assert data["counts"]["same"] == 2 and data["ok"] == 2 and data["failed"] == 3
    # what the proxy's headers said, read from LiteLLM's own responses
    a = got["alias-a"]["proxy"]
    assert a["deployment"] == "openai/model-a" and a["api_base"] == stub.base_url
    assert a["litellm_version"] == "1.110.2" and a["attempted_fallbacks"] == 0
    p = got["chat-p"]["proxy"]
    assert p["attempted_fallbacks"] == 1 and p["deployment"] == "openai/model-fb"
    assert got["chat-p"]["direct"]["status"] == "server_error"  # the primary still fails
    assert "chat-fb" in got["chat-p"]["detail"] or "model-fb" in got["chat-p"]["detail"]
    assert "fallback" in got["chat-p"]["hint"]
    d = got["chat-d"]
    assert d["proxy"]["deployment"] == "openai/model-d2" and d["direct"]["model"] == "model-d"
    assert "model-d2" in d["detail"] and "edit the plan" in d["hint"]
    k = got["chat-k"]
    assert k["direct"]["status"] == "auth_failed" and k["proxy"]["status"] == "ok"
    assert k["hint"] == "key rejected: check K_KEY"
    # the proxy was called with the key Layra stores, masked in the output
    assert {n["proxy"]["key"] for n in data["names"]} == {"sk-...xy-7"}
    assert {n["proxy"]["endpoint"] for n in data["names"]} == {proxy}
    # both sides got Layra's request: chat-a's most common live shape (temperature 0.3 from
    # the workflow; the flagged max length and the soft-deleted shape are never sent)
    assert got["chat-a"]["params"] == {"temperature": 0.3}
    upstream = stub.requests_for("model-a")
    assert len(upstream) == 4  # chat-a and alias-a, each via the proxy and direct
    shaped = [q for q in upstream if q.body.get("temperature") == 0.3]
    assert len(shaped) == 2 and all("max_tokens" not in q.body for q in upstream)
    assert all(
        q.body["stream"] is True and q.body["stream_options"] == {"include_usage": True}
        for q in upstream
    )
    assert not any(q.api_key == "sk-CANARYvirtualKEY-gone" for q in stub.requests)
    # only the probe prompt left: never Layra's data
    assert {json.dumps(q.body["messages"]) for q in stub.requests} == {
        json.dumps([{"role": "user", "content": "Reply with the single word OK."}])
    }
    # Layra's documents untouched; the comparison recorded in the tool's own collection
    assert layra_state(db) == before
    [run] = list(db.layra_migrate_verify.find({}))
    assert run["mode"] == "against_proxy" and run["passed"] is False
    assert {n["model_name"]: n["status"] for n in run["names"]}["chat-d"] == "differs"
    assert_no_canary(r.stdout, r.stderr, repr(run))


def test_rich_output_gives_one_hint_per_difference(
    db: Any, invoke: Any, plan: Path, proxy: str, stub: ProviderStub
) -> None:
    r = invoke(
        "verify",
        "--plan",
        str(plan),
        "--against-proxy",
        "--proxy-endpoint",
        proxy,
        "--timeout",
        "20",
        env=operator_env(stub),
    )
    assert r.exit_code == 5, r.output
    text = r.stdout
    for name, status in (
        ("chat-p", "proxy_fell_back"),
        ("chat-d", "differs"),
        ("chat-k", "direct_fails"),
    ):
        assert f"{status}  {name}:" in text
    assert text.count("→ ") == 3
    assert "same: 2" in text and "different: 3" in text
    assert_no_canary(r.stdout, r.stderr)


def test_all_same_exits_zero_and_decommission_shows_it(
    db: Any, invoke: Any, plan: Path, proxy: str, stub: ProviderStub
) -> None:
    # the operator fixes the key, points chat-d's target at what the proxy really uses and
    # chat-p's at the fallback the proxy serves it from
    data = yaml.safe_load(plan.read_text(encoding="utf-8"))
    data["models"]["chat-d"]["target"]["model"] = "model-d2"
    data["models"]["chat-p"]["target"]["model"] = "model-fb"
    plan.write_text(yaml.safe_dump(data), encoding="utf-8")
    env = {**operator_env(stub), "K_KEY": UPSTREAM}
    r = invoke(
        "verify",
        "--plan",
        str(plan),
        "--against-proxy",
        "--proxy-endpoint",
        proxy,
        "--json",
        "--timeout",
        "20",
        env=env,
    )
    got = {n["model_name"]: n["status"] for n in json.loads(r.stdout)["names"]}
    # chat-p: the proxy still falls back (its primary fails), even though the direct
    # target is now the fallback: the comparison says so rather than calling it the same
    assert got == {
        "alias-a": "same",
        "chat-a": "same",
        "chat-d": "same",
        "chat-k": "same",
        "chat-p": "proxy_fell_back",
    }
    assert r.exit_code == 5
    # decommission's interlock reads the newest comparison
    import asyncio

    from pymongo import AsyncMongoClient

    from layra_migrate.decommission.interlock import count_references
    from layra_migrate.proxy import ProxySet
    from layra_migrate.settings import Environment

    async def interlock() -> Any:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            db.client.address[0], db.client.address[1]
        )
        try:
            from layra_migrate.verify import last_verify_run

            # a comparison is not a probe run: the probe-run reader does not return it
            assert await last_verify_run(client[db.name], "plan") is None
            return await count_references(
                client[db.name], Environment({}), ProxySet.build([COMPOSE_URL])
            )
        finally:
            await client.close()

    lock = asyncio.run(interlock())
    s = lock.proxy_comparison
    assert s is not None and s["passed"] is False and s["different"] == ["chat-p (proxy_fell_back)"]
    assert s["counts"]["same"] == 4
    assert any("verify --against-proxy" in w and "chat-p" in w for w in lock.warnings)
    assert lock.as_dict()["proxy_comparison"] == s
    # chat-p is retired (its references removed, and its plan entry): every name is the
    # same, exit 0, and decommission's summary says so
    db.model_config.update_one({}, {"$pull": {"models": {"model_name": "chat-p"}}})
    del data["models"]["chat-p"]
    plan.write_text(yaml.safe_dump(data), encoding="utf-8")
    r = invoke(
        "verify",
        "--plan",
        str(plan),
        "--against-proxy",
        "--proxy-endpoint",
        proxy,
        "--timeout",
        "20",
        env=env,
    )
    assert r.exit_code == 0, r.output
    assert "same: 4" in r.stdout and "different: 0" in r.stdout
    assert "rewrite --plan" in r.stdout  # the next step
    lock = asyncio.run(interlock())
    s = lock.proxy_comparison
    assert s is not None and s["passed"] is True and s["different"] == []
    assert not any("against-proxy" in w for w in lock.warnings)


def test_unreachable_proxy_is_proxy_fails(
    db: Any, invoke: Any, plan: Path, stub: ProviderStub
) -> None:
    """Without --proxy-endpoint the URL stored in Layra is used; from here the compose name
    does not resolve: every name whose direct call works is proxy_fails (no oracle needed)."""
    r = invoke(
        "verify",
        "--plan",
        str(plan),
        "--against-proxy",
        "--json",
        "--timeout",
        "5",
        env=operator_env(stub),
    )
    assert r.exit_code == 5, r.output
    got = {n["model_name"]: n for n in json.loads(r.stdout)["names"]}
    assert {n: got[n]["status"] for n in NAMES} == {
        "alias-a": "proxy_fails",
        "chat-a": "proxy_fails",
        "chat-d": "proxy_fails",
        "chat-k": "direct_fails",
        "chat-p": "direct_fails",
    }
    assert got["chat-a"]["proxy"]["status"] == "unreachable"
    assert got["chat-a"]["proxy"]["endpoint"] == COMPOSE_URL
    assert "--proxy-endpoint" in got["chat-a"]["hint"]


def test_against_proxy_needs_a_plan(invoke: Any) -> None:
    r = invoke("verify", "--against-proxy")
    assert r.exit_code == 2 and "--plan" in r.output
    r = invoke("verify", "--proxy-endpoint", "http://localhost:4000/v1")
    assert r.exit_code == 2 and "--against-proxy" in r.output
