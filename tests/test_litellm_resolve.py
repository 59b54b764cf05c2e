"""LiteLLM config loading and alias -> direct target resolution (pure logic)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from layra_migrate.errors import ConfigError
from layra_migrate.litellm.config import load_config
from layra_migrate.litellm.providers import PROVIDERS
from layra_migrate.litellm.resolve import resolve_name


def write(tmp: Path, text: str, name: str = "config.yaml") -> Path:
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def env_of(**values: str):  # noqa: ANN202
    return values.get


def test_include_merges_model_lists_relative_to_including_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        "model_list:\n  - model_name: e\n    litellm_params: {model: voyage/voyage-3}\n"
        "    model_info: {mode: embedding}\n",
        "sub/more.yaml",
    )
    cfg = load_config(
        write(
            tmp_path,
            "include: [sub/more.yaml]\nmodel_list:\n"
            "  - model_name: a\n    litellm_params: {model: deepseek/deepseek-chat}\n",
        )
    )
    assert [d.model_name for d in cfg.deployments] == ["a", "e"]
    assert resolve_name(cfg, "e", env_of()).reason_code == "not_chat_model"


def test_env_references_and_default_key_variables(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
model_list:
  - model_name: local
    litellm_params:
      model: openai/qwen
      api_base: os.environ/VLLM_BASE
      api_key: os.environ/VLLM_KEY
  - model_name: g
    litellm_params: {model: gemini/gemini-2.5-pro}
  - model_name: lit
    litellm_params: {model: deepseek/deepseek-chat, api_key: sk-literal-in-config-0000000000}
""",
        )
    )
    r = resolve_name(cfg, "local", env_of(VLLM_BASE="http://vllm:8000/v1"))
    assert r.target and r.target.base_url == "http://vllm:8000/v1"
    assert r.target.api_key_env == "VLLM_KEY" and r.target.model == "qwen"
    assert resolve_name(cfg, "local", env_of()).reason_code == "needs_api_base"
    # LiteLLM reads GOOGLE_API_KEY too; GEMINI_API_KEY is recommended when neither is set
    assert resolve_name(cfg, "g", env_of()).target.api_key_env == "GEMINI_API_KEY"  # type: ignore[union-attr]
    assert resolve_name(cfg, "g", env_of(GOOGLE_API_KEY="x")).target.api_key_env == "GOOGLE_API_KEY"  # type: ignore[union-attr]
    lit = resolve_name(cfg, "lit", env_of())
    assert lit.target and lit.target.api_key_env == "DEEPSEEK_API_KEY"
    assert any("literal key" in n for n in lit.notes)
    assert "sk-literal" not in " ".join(lit.notes)


def test_alias_group_wildcards_and_ambiguity(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
model_list:
  - model_name: r1
    litellm_params: {model: deepseek/deepseek-reasoner}
  - model_name: lb
    litellm_params: {model: groq/llama-3.3-70b}
  - model_name: lb
    litellm_params: {model: together_ai/meta-llama/Llama-3.3-70B}
  - model_name: same
    litellm_params: {model: mistral/mistral-large-latest}
  - model_name: same
    litellm_params: {model: mistral/mistral-large-latest}
  - model_name: "openai/*"
    litellm_params: {model: "openai/*"}
  - model_name: "*"
    litellm_params: {model: "*"}
router_settings:
  model_group_alias: {default: r1, hidden-one: {model: r1, hidden: true}}
""",
        )
    )
    env = env_of()
    assert resolve_name(cfg, "default", env).target.model == "deepseek-reasoner"  # type: ignore[union-attr]
    assert resolve_name(cfg, "hidden-one", env).target.provider == "deepseek"  # type: ignore[union-attr]
    lb = resolve_name(cfg, "lb", env)
    assert lb.reason_code == "ambiguous" and len(lb.choices) == 2
    assert {c.provider for c in lb.choices} == {"groq", "together_ai"}
    # identical deployments are one target, not ambiguity
    assert resolve_name(cfg, "same", env).resolved
    w = resolve_name(cfg, "openai/gpt-4.1", env)
    assert w.target and (w.target.provider, w.target.model) == ("openai", "gpt-4.1")
    # "*" catches it; LiteLLM's model map says a bare gemini-2.5-flash is Vertex AI, not the
    # Gemini API (checked against LiteLLM in test_litellm_oracle.py): no automatic target
    star = resolve_name(cfg, "gemini-2.5-flash", env)
    assert star.reason_code == "unsupported_provider" and "vertex_ai" in (star.reason or "")
    unknown = resolve_name(cfg, "mystery-model", env)
    assert unknown.reason_code == "unknown_provider"


def test_unsupported_providers_and_no_route(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
model_list:
  - model_name: c
    litellm_params: {model: anthropic/claude-sonnet-4}
  - model_name: az
    litellm_params: {model: azure/my-deployment, api_base: https://x.openai.azure.com}
""",
        )
    )
    assert resolve_name(cfg, "c", env_of()).reason_code == "unsupported_provider"
    assert resolve_name(cfg, "az", env_of()).reason_code == "unsupported_provider"
    assert resolve_name(cfg, "gpt-4o", env_of()).reason_code == "no_route"


def test_include_cycle_and_bad_entries(tmp_path: Path) -> None:
    # LiteLLM reads a file once: a cycle ends, it does not fail
    write(
        tmp_path,
        "include: [a.yaml]\nmodel_list: [{model_name: b, litellm_params: {model: "
        "deepseek/deepseek-chat}}]\n",
        "b.yaml",
    )
    cyc = load_config(write(tmp_path, "include: [b.yaml]\nmodel_list: []\n", "a.yaml"))
    assert [d.model_name for d in cyc.deployments] == ["b"]
    with pytest.raises(ConfigError, match="list of file paths"):
        load_config(write(tmp_path, "include: b.yaml\nmodel_list: []\n", "s.yaml"))
    with pytest.raises(ConfigError, match="litellm_params.model"):
        load_config(write(tmp_path, "model_list:\n  - model_name: x\n", "c.yaml"))
    with pytest.raises(ConfigError, match=r"c2.yaml:3"):
        load_config(write(tmp_path, "model_list:\n  - model_name: x\n  bad: [\n", "c2.yaml"))


CHAT_PROVIDERS = sorted(n for n, p in PROVIDERS.items() if p.openai_chat and p.base_url)
model_ids = st.from_regex(r"[a-z][a-z0-9.\-:]{0,30}", fullmatch=True)
aliases = st.from_regex(r"[a-z][a-z0-9\-]{0,20}", fullmatch=True)


@given(
    provider=st.sampled_from(CHAT_PROVIDERS),
    model_id=model_ids,
    alias=aliases,
    via_alias=st.booleans(),
)
def test_resolution_strips_prefix_and_uses_catalog(
    tmp_path_factory: pytest.TempPathFactory,
    provider: str,
    model_id: str,
    alias: str,
    via_alias: bool,
) -> None:
    folder = tmp_path_factory.mktemp("cfg")
    text = (
        f"model_list:\n  - model_name: {alias}\n    litellm_params:\n"
        f'      model: "{provider}/{model_id}"\n'
    )
    if via_alias:
        text += f"router_settings:\n  model_group_alias:\n    app-{alias}: {alias}\n"
    cfg = load_config(write(folder, text))
    r = resolve_name(cfg, f"app-{alias}" if via_alias else alias, env_of())
    assert r.target is not None
    assert r.target.provider == provider
    assert r.target.model == model_id
    assert r.target.base_url == PROVIDERS[provider].base_url
    assert r.target.api_key_env == PROVIDERS[provider].key_envs[0]
