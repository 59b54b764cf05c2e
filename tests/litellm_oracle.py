"""LiteLLM 1.110.2 itself as the judge of config resolution (test extra ``oracle``).

The oracle loads a config the way the proxy does (``ProxyConfig.load_config``: includes,
``os.environ/`` references, ``router_settings`` -> ``Router``) and asks the router which
deployments serve a name (``registry().deployments``), confirmed by asking ``select`` again
and again, since a group picks at random. Each deployment is then read with LiteLLM's own
``get_llm_provider`` (provider, upstream model id, the key it read from the environment,
the base URL) and ``validate_environment`` (the key variables it expects).

Where LiteLLM decides a base URL inside its per-provider call code rather than in
``get_llm_provider`` (openai, gemini, ollama_chat, openrouter, hosted_vllm), the
variables that code reads are listed in ``CALL_BASE_ENVS`` with their place in
litellm/main.py, and the default is LiteLLM's ``get_api_base``.

Secrets: every variable gets the value ``val-<NAME>``, so the value a deployment carries
maps back to the variable it came from; no real key is ever involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ORACLE_VERSION = "1.110.2"
CANARY = "val-"

# litellm/main.py 1.110.2: the variables the per-provider call code reads for the base URL
# when neither the route nor get_llm_provider set one.
CALL_BASE_ENVS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),  # main.py:1922
    "gemini": ("GEMINI_API_BASE",),  # main.py:3910
    "ollama_chat": ("OLLAMA_API_BASE",),  # main.py:4803 (default http://localhost:11434)
    "ollama": ("OLLAMA_API_BASE",),  # main.py:4763
    "openrouter": ("OPENROUTER_API_BASE",),  # main.py:3644 (default openrouter.ai/api/v1)
    "hosted_vllm": ("HOSTED_VLLM_API_BASE",),  # main.py:2745
}
CALL_DEFAULT_BASE = {
    "ollama_chat": "http://localhost:11434",
    "ollama": "http://localhost:11434",
    "openrouter": "https://openrouter.ai/api/v1",
    "gemini": "https://generativelanguage.googleapis.com",
}


def canary(var: str) -> str:
    return f"{CANARY}{var}"


def var_of(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(CANARY):
        return value[len(CANARY) :]
    return None


def require_oracle() -> Any:
    """The litellm module, or skip (fail under CI=true) with the reason."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
        from litellm.proxy import proxy_server  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        reason = (
            f"LiteLLM oracle not installed ({exc}); pip install -e '.[test,oracle]' "
            "runs the differential tests"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    version = getattr(getattr(litellm, "_version", None), "version", None)
    if version != ORACLE_VERSION:
        pytest.fail(f"the oracle must be litellm=={ORACLE_VERSION}, found {version}")
    return litellm


@contextlib.contextmanager
def proxy_environment(env: Mapping[str, str]) -> Iterator[None]:
    """os.environ as the proxy process would have it, restored afterwards."""
    saved = dict(os.environ)
    keep = {k: v for k, v in saved.items() if k in ("PATH", "HOME", "TMPDIR", "LANG")}
    os.environ.clear()
    os.environ.update(keep)
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass(frozen=True)
class OracleTarget:
    """LiteLLM's answer for one deployment serving a name."""

    provider: str | None  # None: get_llm_provider raised
    model: str
    base: str | None  # the base URL LiteLLM calls (native spelling)
    key_var: str | None  # the variable the key came from, when LiteLLM says
    key_literal: bool
    expected_key_vars: tuple[str, ...]  # validate_environment's names for the provider
    mode: str
    error: str | None = None
    group: str = ""  # the deployment's model_name
    routed_model: str = ""  # its litellm_params.model as routed
    position: int = -1  # its place among the config entries with the same model_name


@dataclass
class OracleAnswer:
    deployments: list[OracleTarget]
    picks: int  # distinct deployments select() returned
    ids: int  # distinct deployment ids the registry lists (identical entries share one)


class Oracle:
    def __init__(self) -> None:
        self.litellm = require_oracle()
        from litellm.proxy.proxy_server import ProxyConfig

        self._proxy_config_cls = ProxyConfig

    def resolve(self, config: Path, env: Mapping[str, str], names: list[str]) -> dict[str, Any]:
        with proxy_environment(env), contextlib.redirect_stdout(io.StringIO()):
            return asyncio.run(self._resolve(config, env, names))

    async def _resolve(
        self, config: Path, env: Mapping[str, str], names: list[str]
    ) -> dict[str, OracleAnswer]:
        pc = self._proxy_config_cls()
        router, _models, _general = await pc.load_config(router=None, config_file_path=str(config))
        registry = router.registry()
        out: dict[str, OracleAnswer] = {}
        for name in names:
            # the candidates, by the registry's indexes: the group the alias names (one
            # level), else the wildcard route serving it, else the entries whose
            # litellm_params.model it is; select() must then reach exactly these
            alias = registry.resolve(name, kind="alias")
            routed = str(alias) if alias else name
            everything = list(registry.all())
            deps = [d for d in everything if d.get("model_name") == routed]
            if not deps:
                deps = list(registry.deployments(routed, source="wildcard") or [])
            if not deps:
                deps = [
                    d
                    for d in everything
                    if (d.get("litellm_params") or {}).get("model") == routed
                    and "*" not in str(d.get("model_name"))
                ]
            try:
                await router.select(name)
            except Exception:  # noqa: BLE001 - select() refuses: no route, whatever the
                deps = []  # registry's view says (it follows an alias of an alias; select does not)
            ids = {str((d.get("model_info") or {}).get("id")) for d in deps}
            # the deployments as select() hands them out (the registry's view can spell a
            # wildcard route reached through an alias with the alias name)
            picked: dict[str, Mapping[str, Any]] = {}
            if deps:
                for _ in range(400):
                    pick = await router.select(name)
                    pid = str((pick.get("model_info") or {}).get("id"))
                    assert pid in ids, f"select({name!r}) returned a deployment outside {ids}"
                    picked.setdefault(pid, pick)
                    if set(picked) == ids:
                        break
            else:
                with pytest.raises(Exception, match="no healthy deployments|No deployments"):
                    await router.select(name)
            out[name] = OracleAnswer(
                [self._target(d, env, self._position(d, everything)) for d in picked.values()],
                len(picked),
                len(ids) if deps else 0,
            )
        router.retire()
        return out

    @staticmethod
    def _position(dep: Mapping[str, Any], everything: list[Mapping[str, Any]]) -> int:
        """Which config entry of its model_name this is (config order)."""
        same = [d for d in everything if d.get("model_name") == dep.get("model_name")]
        for i, d in enumerate(same):
            if d is dep or (d.get("model_info") or {}).get("id") == (
                dep.get("model_info") or {}
            ).get("id"):
                return i
        return -1

    def _target(
        self, dep: Mapping[str, Any], env: Mapping[str, str], position: int = -1
    ) -> OracleTarget:
        litellm = self.litellm
        from litellm.litellm_core_utils.llm_response_utils.get_api_base import get_api_base

        params = dict(dep.get("litellm_params") or {})
        info = dep.get("model_info") or {}
        mode = str(info.get("mode") or "chat")
        model = str(params.get("model"))
        api_key = params.get("api_key")
        api_base = params.get("api_base")
        try:
            model_id, provider, dyn_key, dyn_base = litellm.get_llm_provider(
                model=model,
                custom_llm_provider=params.get("custom_llm_provider"),
                api_base=api_base,
            )
        except Exception as exc:  # noqa: BLE001 - LiteLLM cannot route it
            return OracleTarget(
                None,
                model,
                None,
                None,
                False,
                (),
                mode,
                str(exc)[:120],
                str(dep.get("model_name")),
                model,
                position,
            )
        key_var = var_of(api_key) or var_of(dyn_key)
        literal = bool(api_key) and var_of(api_key) is None
        with proxy_environment({}):  # with nothing set, LiteLLM names every variable it wants
            check = litellm.validate_environment(model=f"{provider}/{model_id}")
        expected = tuple(check.get("missing_keys") or ())
        base = api_base or dyn_base
        if not base:
            # os.environ as the proxy has it now, environment_variables applied
            for var in CALL_BASE_ENVS.get(provider, ()):
                if os.environ.get(var):
                    base = os.environ[var]
                    break
        if not base:
            base = CALL_DEFAULT_BASE.get(provider) or get_api_base(f"{provider}/{model_id}", {})
        return OracleTarget(
            provider,
            model_id,
            base,
            key_var,
            literal,
            expected,
            mode,
            None,
            str(dep.get("model_name")),
            model,
            position,
        )
