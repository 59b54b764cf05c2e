"""Lost proxy behaviours per model, the proxy's own environment, include provenance."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from layra_migrate.errors import ConfigError
from layra_migrate.litellm.config import load_config
from layra_migrate.litellm.proxy_env import find_compose_env, load_proxy_environment
from layra_migrate.litellm.resolve import resolve_name
from tests.conftest import assert_no_canary

CONFIG = """
model_list:
  - model_name: r1
    litellm_params: {model: deepseek/deepseek-reasoner, rpm: 60, tpm: 100000, timeout: 30,
                     num_retries: 3, max_budget: 25, budget_duration: 30d}
  - model_name: chat
    litellm_params: {model: deepseek/deepseek-chat}
  - model_name: plain
    litellm_params: {model: mistral/mistral-large-latest}
  - model_name: "openai/*"
    litellm_params: {model: "openai/*"}
router_settings:
  fallbacks: [{r1: [chat]}]
  context_window_fallbacks: [{chat: [plain]}]
litellm_settings:
  drop_params: true
  cache: true
  cache_params: {type: redis}
  default_fallbacks: [plain]
"""


def kinds(resolution: Any) -> dict[str, Any]:
    return {b.kind: b for b in resolution.lost_behaviours}


def test_each_model_lists_the_behaviours_that_applied_to_it(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    cfg = load_config(path)
    r1 = kinds(resolve_name(cfg, "r1", {}.get))
    assert r1["fallbacks"].detail.endswith("chat")
    assert r1["default_fallbacks"].detail.endswith("plain")
    assert r1["rate_limit"].detail == "rpm 60, tpm 100000 per deployment"
    assert r1["timeout"].detail.startswith("timeout 30")
    assert r1["num_retries"].detail.startswith("num_retries 3")
    assert "max_budget 25" in r1["budget"].detail
    assert r1["caching"].detail == "litellm_settings.cache: true (redis)"
    assert "400" in r1["drop_params"].impact
    chat = kinds(resolve_name(cfg, "chat", {}.get))
    assert "fallbacks" not in chat and "rate_limit" not in chat
    assert chat["context_window_fallbacks"].detail.endswith("plain")
    # the default fallback itself does not "fall back" to itself
    assert "default_fallbacks" not in kinds(resolve_name(cfg, "plain", {}.get))
    # a name served by a wildcard gets the global behaviours too
    wild = resolve_name(cfg, "gpt-4o", {}.get)
    assert wild.target is not None and {"drop_params", "caching"} <= set(kinds(wild))
    # no route: the reason says the proxy answered it through default_fallbacks
    missing = resolve_name(cfg, "mystery-model", {}.get)
    assert missing.target is None and "default_fallbacks" in (missing.reason or "")


def test_proxy_env_file_decides_base_and_key_and_never_shows_values(tmp_path: Path) -> None:
    folder = tmp_path / "litellm"
    folder.mkdir()
    (folder / "docker-compose.yml").write_text("services: {litellm: {image: berriai/litellm}}\n")
    secret = "CANARYproxyENVvalue0000"
    (folder / ".env").write_text(
        f"DEEPSEEK_API_BASE=http://ds.internal:8080/v1\nGOOGLE_API_KEY={secret}\n"
    )
    path = folder / "config.yaml"
    path.write_text(
        "model_list:\n"
        "  - {model_name: ds, litellm_params: {model: deepseek/deepseek-chat}}\n"
        "  - {model_name: g, litellm_params: {model: gemini/gemini-2.5-flash}}\n"
        "environment_variables: {GROQ_API_BASE: http://groq.internal/v1}\n"
        "  \n"
    )
    assert find_compose_env(path) == folder / ".env"
    cfg = load_config(path)
    penv = load_proxy_environment(None, path, cfg.environment_variables, {}.get)
    assert penv.env_file == folder / ".env"
    ds = resolve_name(cfg, "ds", {}.get, proxy_lookup=penv.lookup, ref_lookup=penv.process_lookup)
    assert ds.target is not None and ds.target.base_url == "http://ds.internal:8080/v1"
    assert ds.sources["base_url"] == f"$DEEPSEEK_API_BASE in {folder / '.env'}"
    g = resolve_name(cfg, "g", {}.get, proxy_lookup=penv.lookup, ref_lookup=penv.process_lookup)
    # LiteLLM reads GOOGLE_API_KEY before GEMINI_API_KEY: the proxy used GOOGLE_API_KEY
    assert g.target is not None and g.target.api_key_env == "GOOGLE_API_KEY"
    assert str(folder / ".env") in g.sources["api_key_env"]
    assert_no_canary(repr(ds), repr(g), repr(penv.names()))
    assert secret not in repr(ds) + repr(g)
    assert penv.source("GROQ_API_BASE") == "config.yaml environment_variables"
    with pytest.raises(ConfigError, match="LiteLLM env file not found"):
        load_proxy_environment(tmp_path / "nope.env", path, {}, {}.get, required=True)


def test_cli_reads_litellm_env_file_and_prints_names_only(
    seeded_db: Any, cli: Any, litellm_config: Path, tmp_path: Path
) -> None:
    env_file = tmp_path / "proxy.env"
    secret = "CANARYdeepseekBASEsecret00"
    env_file.write_text(f"DEEPSEEK_API_BASE=http://ds.internal/v1?token={secret}\n")
    r = cli(
        "audit",
        "--json",
        "--litellm-config",
        str(litellm_config),
        "--litellm-env-file",
        str(env_file),
    )
    assert r.code == 0, r.stderr
    res = {m["model_name"]: m["resolution"] for m in r.json()["models"]}
    assert "DEEPSEEK_API_BASE" in res["deepseek-chat"]["sources"]["base_url"]
    assert str(env_file) in res["deepseek-chat"]["sources"]["base_url"]
    human = cli(
        "audit", "--litellm-config", str(litellm_config), "--litellm-env-file", str(env_file)
    )
    assert human.code == 0 and "lost:" in human.stdout
    missing = cli(
        "audit",
        "--litellm-config",
        str(litellm_config),
        "--litellm-env-file",
        str(tmp_path / "absent.env"),
    )
    assert missing.code == 2 and "absent.env" in missing.stderr


def test_included_file_replaces_router_settings(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "model_list:\n  - {model_name: x, litellm_params: {model: xai/grok-4}}\n"
        "router_settings: {model_group_alias: {default: x}}\n"
    )
    path = tmp_path / "config.yaml"
    path.write_text(
        "include: [a.yaml]\nmodel_list:\n"
        "  - {model_name: d, litellm_params: {model: deepseek/deepseek-chat}}\n"
        "router_settings: {model_group_alias: {default: d, other: d}}\n"
    )
    cfg = load_config(path)
    # the included file's router_settings replaces the main file's as a whole
    assert cfg.group_aliases == {"default": "x"}
    assert cfg.section_sources["router_settings"] == (tmp_path / "a.yaml").resolve()
    assert [d.model_name for d in cfg.deployments] == ["d", "x"]
    assert resolve_name(cfg, "other", {}.get).reason_code == "no_route"


def test_catalog_ships_in_the_wheel() -> None:
    repo = Path(__file__).resolve().parents[1]
    config = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "litellm_catalog.json" in config["package-data"]["layra_migrate.litellm"]
    assert (repo / "layra_migrate" / "litellm" / "litellm_catalog.json").is_file()
