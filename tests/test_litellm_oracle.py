"""Differential tests: the tool's resolution equals LiteLLM 1.110.2's own, name by name.

LiteLLM (test extra ``oracle``) loads each config the way the proxy does and its router
says which deployments serve a name; see tests/litellm_oracle.py. For every name the
tool must give the same provider, upstream model id, key variable and base URL (modulo
``providers.direct_base_url``, the one documented table from LiteLLM's native endpoints
to OpenAI-compatible ones), say "ambiguous" with the same choices where LiteLLM
load-balances, and refuse with the right reason where LiteLLM cannot route or the
provider has no OpenAI-compatible chat endpoint.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from layra_migrate.litellm.catalog import _catalog, infer_provider, latest_alias_target
from layra_migrate.litellm.config import env_ref, load_config
from layra_migrate.litellm.providers import PROVIDERS, direct_base_url
from layra_migrate.litellm.proxy_env import ProxyEnvironment
from layra_migrate.litellm.resolve import (
    AMBIGUOUS,
    CHAT_MODES,
    NEEDS_BASE,
    NO_ROUTE,
    NOT_CHAT,
    UNKNOWN_PROVIDER,
    UNSUPPORTED,
    Resolution,
    resolve_name,
)
from layra_migrate.sandbox.litellm_config import write_litellm_config
from tests.litellm_oracle import Oracle, OracleAnswer, OracleTarget, canary

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    return Oracle()


# -- comparing one name ---------------------------------------------------------------------


def expected_of(t: OracleTarget) -> tuple[str, Any]:
    """LiteLLM's answer for one deployment, as the tool must state it."""
    if t.provider is None or t.provider not in PROVIDERS:
        return "refused", UNKNOWN_PROVIDER
    spec = PROVIDERS[t.provider]
    if t.mode not in CHAT_MODES:
        return "refused", NOT_CHAT
    if not spec.openai_chat:
        return "refused", UNSUPPORTED
    if not t.base:
        return "refused", NEEDS_BASE
    direct, _why = direct_base_url(t.provider, t.base)
    if direct is None:
        return "refused", NEEDS_BASE
    return "target", (t.provider, direct, t.model)


def check_key(
    ours_var: str | None,
    key_required: bool,
    t: OracleTarget,
    env: dict[str, str],
    unset_keys: dict[tuple[str, int], str],
) -> None:
    where = f"{t.provider}/{t.model}"
    named = unset_keys.get((t.group, t.position))
    if named is not None:
        # api_key: os.environ/VAR with VAR unset where the proxy runs: LiteLLM falls back to
        # its default variable; the tool keeps the variable the config names (the rewrite
        # reads it from the tool's environment and stops when it is missing)
        assert ours_var == named, f"{where}: the config names ${named}, tool says {ours_var}"
        return
    if t.key_var is not None:
        assert ours_var == t.key_var, f"{where}: LiteLLM reads ${t.key_var}, tool says {ours_var}"
        return
    if t.provider in ("ollama", "ollama_chat"):
        assert ours_var == "OLLAMA_API_KEY"
        return
    if not t.expected_key_vars:
        assert not key_required, f"{where}: LiteLLM needs no key, the tool requires {ours_var}"
        return
    assert ours_var in t.expected_key_vars, f"{where}: {ours_var} not in {t.expected_key_vars}"
    set_vars = [v for v in t.expected_key_vars if env.get(v)]
    if set_vars:
        assert ours_var == set_vars[0], f"{where}: LiteLLM reads ${set_vars[0]} first"


def compare(
    name: str,
    ours: Resolution,
    answer: OracleAnswer,
    env: dict[str, str],
    unset_bases: set[tuple[str, int]],
    unset_keys: dict[tuple[str, int], str],
) -> None:
    """``unset_bases``: (group, position) of routes whose ``api_base: os.environ/VAR`` names an
    unset VAR. LiteLLM then silently calls the provider's default endpoint; the tool
    refuses such a route instead (a documented difference: a refusal, never a target)."""
    deps = answer.deployments
    assert answer.picks == answer.ids, f"{name}: select() did not reach every deployment"
    if not deps:
        assert ours.reason_code == NO_ROUTE and ours.target is None, (
            f"{name}: LiteLLM has no route, tool says {ours.status} {ours.reason_code}"
        )
        return
    exp = [
        ("refused", NEEDS_BASE)
        if (t.group, t.position) in unset_bases and expected_of(t)[0] == "target"
        else expected_of(t)
        for t in deps
    ]
    # one upstream = provider, base, model and the key variable: two deployments that
    # differ only by key are two accounts, still a choice for the operator. A literal key
    # counts as the provider's default variable (the tool reads that instead, with a note).
    targets: list[tuple[Any, OracleTarget]] = []
    seen_ids: list[Any] = []
    for (kind, value), t in zip(exp, deps, strict=True):
        ident = (value, t.key_var)
        if kind == "target" and ident not in seen_ids:
            seen_ids.append(ident)
            targets.append((value, t))
    refused = [value for kind, value in exp if kind == "refused"]
    if len(deps) > 1 and (len(targets) > 1 or (targets and refused)):
        assert ours.reason_code == AMBIGUOUS, (
            f"{name}: LiteLLM load-balances over {[v for v, _ in targets]}, tool says "
            f"{ours.status} {ours.reason_code} {ours.target}"
        )
        got = {(c.provider, c.base_url, c.model) for c in ours.choices}
        assert got == {v for v, _ in targets}, f"{name}: choices differ"
        assert len(ours.choices) == len(targets), f"{name}: choices differ by key"
        return
    if not targets:
        assert ours.target is None, (
            f"{name}: LiteLLM gives no usable target, tool gives {ours.target}"
        )
        assert ours.reason_code in refused, f"{name}: {ours.reason_code} not in {refused}"
        return
    value, t = targets[0]
    assert ours.target is not None, (
        f"{name}: LiteLLM routes to {value}, tool says {ours.reason_code}: {ours.reason}"
    )
    got_t = (ours.target.provider, ours.target.base_url, ours.target.model)
    assert got_t == value, f"{name}: tool {got_t} != LiteLLM {value}"
    check_key(ours.target.api_key_env, ours.target.key_required, t, env, unset_keys)
    if t.key_literal:
        assert any("literal key" in n for n in ours.notes)


def run_both(oracle: Oracle, config: Path, env: dict[str, str], names: list[str]) -> None:
    answers = oracle.resolve(config, env, names)
    cfg = load_config(config)
    penv = ProxyEnvironment(file_values=dict(env), env_file=config.parent / "proxy.env")
    config_env = {k: v for k, v in cfg.environment_variables.items()}
    penv.config_values = {
        k: (penv.get(v[len("os.environ/") :]) or "") if v.startswith("os.environ/") else v
        for k, v in config_env.items()
    }
    positions: dict[str, int] = {}
    placed = []
    for d in cfg.deployments:
        placed.append(((d.model_name, positions.get(d.model_name, 0)), d))
        positions[d.model_name] = positions.get(d.model_name, 0) + 1
    unset_bases = {
        at
        for at, d in placed
        if env_ref(d.api_base) and not penv.process_lookup(str(env_ref(d.api_base)))[0]
    }
    unset_keys = {
        at: str(env_ref(d.api_key))
        for at, d in placed
        if env_ref(d.api_key) and not penv.process_lookup(str(env_ref(d.api_key)))[0]
    }
    merged_env = {**env, **{k: v for k, v in penv.config_values.items() if v}}
    for name in names:
        ours = resolve_name(
            cfg, name, penv.get, proxy_lookup=penv.lookup, ref_lookup=penv.process_lookup
        )
        compare(name, ours, answers[name], merged_env, unset_bases, unset_keys)


# -- the vendored catalog against LiteLLM's get_llm_provider --------------------------------


def test_vendored_catalog_matches_litellm(oracle: Oracle) -> None:
    import contextlib
    import io

    litellm = oracle.litellm
    data = _catalog()
    assert data["litellm_version"] == "1.110.2"
    mapped = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for name in litellm.model_cost:
            if "/" in name or name == "sample_spec":
                continue
            try:
                mapped[name] = litellm.get_llm_provider(name)[1]
            except Exception:  # noqa: BLE001 - LiteLLM cannot infer it
                continue
    # every name LiteLLM infers is in the table, with LiteLLM's provider, and nothing else
    assert data["bare_names"] == mapped
    for provider, aliases in data["latest_aliases"].items():
        for alias, target in aliases.items():
            if provider in PROVIDERS and PROVIDERS[provider].openai_chat:
                assert litellm.get_llm_provider(f"{provider}/{alias}")[0] == target
                assert latest_alias_target(provider, alias) == target


bare_like = st.one_of(
    st.sampled_from(sorted(_catalog()["bare_names"])),
    st.from_regex(
        r"(claude|gpt|gemini|o[134]|ft:gpt-4|gpt-image|deepseek|jev)-[a-z0-9.\-]{0,14}",
        fullmatch=True,
    ),
    st.from_regex(r"[a-z][a-z0-9.\-:]{0,20}", fullmatch=True),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=bare_like)
def test_bare_name_inference_matches_get_llm_provider(oracle: Oracle, name: str) -> None:
    import contextlib
    import io

    from litellm.litellm_core_utils.get_llm_provider_logic import inferred_provider

    with contextlib.redirect_stdout(io.StringIO()):
        theirs = inferred_provider(name)
    assert infer_provider(name) == theirs, name


# -- configs of the suite ---------------------------------------------------------------------

FIXTURE_NAMES = [
    "deepseek-reasoner",
    "deepseek-chat",
    "gemini-2.5-flash",
    "kimi-k2",
    "gpt-oss-120b",
    "claude-sonnet-4",
    "voyage-3",
    "rerank-english",
    "thesis-default",
    "openai/gpt-4.1-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "o3-mini",
    "mystery-model",
    "claude-sonnet-4-5",
]
FIXTURE_ENVS = [
    {},
    {
        v: canary(v)
        for v in (
            "DEEPSEEK_API_KEY",
            "GEMINI_API_KEY",
            "OLLAMA_API_KEY",
            "OPENAI_API_KEY",
            "VLLM_API_KEY",
            "ANTHROPIC_API_KEY",
        )
    },
    {
        "VLLM_API_BASE": "http://vllm.test:8000/v1",
        "DEEPSEEK_API_BASE": "http://ds.test/v1",
        "OPENAI_BASE_URL": "http://oa.test/v1",
        "GOOGLE_API_KEY": canary("GOOGLE_API_KEY"),
        "GEMINI_API_KEY": canary("GEMINI_API_KEY"),
    },
]


@pytest.mark.parametrize("provider_base", [None, "http://stub.test:9"])
@pytest.mark.parametrize("env_index", range(len(FIXTURE_ENVS)))
def test_sandbox_config_matches_litellm(
    oracle: Oracle, tmp_path: Path, provider_base: str | None, env_index: int
) -> None:
    config = write_litellm_config(tmp_path / "litellm", provider_base=provider_base)
    # the proxy's cache and Redis are runtime services, not routing: keep the oracle offline
    text = (
        config.read_text()
        .replace("  cache: true\n", "")
        .replace("  redis_host: litellm-redis\n  redis_port: 6379\n", "")
    )
    config.write_text(text)
    run_both(oracle, config, dict(FIXTURE_ENVS[env_index]), FIXTURE_NAMES)


RESOLVE_FIXTURES = {
    "groups": """
model_list:
  - {model_name: r1, litellm_params: {model: deepseek/deepseek-reasoner}}
  - {model_name: lb, litellm_params: {model: groq/llama-3.3-70b}}
  - {model_name: lb, litellm_params: {model: together_ai/meta-llama/Llama-3.3-70B}}
  - {model_name: same, litellm_params: {model: mistral/mistral-large-latest}}
  - {model_name: same, litellm_params: {model: mistral/mistral-large-latest}}
  - {model_name: "openai/*", litellm_params: {model: "openai/*"}}
  - {model_name: "*", litellm_params: {model: "*"}}
  - {model_name: c, litellm_params: {model: anthropic/claude-sonnet-4}}
  - {model_name: az, litellm_params: {model: azure/my-deployment, api_base: "https://x.test"}}
  - {model_name: local, litellm_params: {model: openai/qwen, api_base: os.environ/VLLM_BASE,
     api_key: os.environ/VLLM_KEY}}
  - {model_name: lit, litellm_params: {model: deepseek/deepseek-chat, api_key: lit-key-0}}
router_settings:
  model_group_alias: {default: r1, hidden-one: {model: r1, hidden: true}}
""",
}


@pytest.mark.parametrize("fixture", sorted(RESOLVE_FIXTURES))
def test_resolve_fixtures_match_litellm(oracle: Oracle, tmp_path: Path, fixture: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(RESOLVE_FIXTURES[fixture])
    names = [
        "r1",
        "lb",
        "same",
        "openai/gpt-4.1",
        "gemini-2.5-flash",
        "mystery-model",
        "default",
        "hidden-one",
        "c",
        "az",
        "local",
        "lit",
        "gpt-4o",
        "claude-sonnet-4-5",
    ]
    run_both(
        oracle, config, {"VLLM_BASE": "http://vllm.test/v1", "VLLM_KEY": canary("VLLM_KEY")}, names
    )
    run_both(oracle, config, {}, names)


# -- generated configs ------------------------------------------------------------------------

MODELS = {
    "openai": ["gpt-4o", "gpt-4.1-mini", "o3-mini", "gpt-mini-latest"],
    "deepseek": ["deepseek-chat", "deepseek-reasoner"],
    "gemini": ["gemini-2.5-flash", "gemini-2.5-pro"],
    "ollama_chat": ["kimi-k2:1t", "llama3"],
    "ollama": ["llama3"],
    "groq": ["llama-3.3-70b-versatile"],
    "mistral": ["mistral-large-latest"],
    "openrouter": ["meta-llama/llama-3-70b"],
    "together_ai": ["meta-llama/Llama-3.3-70B"],
    "xai": ["grok-4"],
    "hosted_vllm": ["qwen"],
    "anthropic": ["claude-sonnet-4-5"],
    "azure": ["my-dep"],
    "voyage": ["voyage-3"],
}
KEY_VARS = [
    "OPENAI_API_KEY",
    "DEEPSEEK_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GROQ_API_KEY",
    "MISTRAL_API_KEY",
    "XAI_API_KEY",
    "OPENROUTER_API_KEY",
    "TOGETHER_API_KEY",
    "TOGETHERAI_API_KEY",
    "OLLAMA_API_KEY",
    "ANTHROPIC_API_KEY",
    "HOSTED_VLLM_API_KEY",
    "CUSTOM_KEY_A",
    "CUSTOM_KEY_B",
]
BASE_VARS = [
    "DEEPSEEK_API_BASE",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "GROQ_API_BASE",
    "XAI_API_BASE",
    "OLLAMA_API_BASE",
    "HOSTED_VLLM_API_BASE",
    "GEMINI_API_BASE",
    "OPENROUTER_API_BASE",
    "TOGETHER_AI_API_BASE",
    "CUSTOM_BASE",
]
WILDCARDS = [
    ("openai/*", "openai/*"),
    ("deepseek/*", "deepseek/*"),
    ("gemini/*", "gemini/*"),
    ("anthropic/*", "anthropic/*"),
    ("xai/*", "xai/*"),
    ("groq/*", "groq/*"),
    ("*", "*"),
    ("team-*", "deepseek/*"),
    ("vertex_ai/*", "vertex_ai/*"),
]
GROUPS = ["m1", "m2", "m3", "m4", "gpt-4o", "deepseek-chat"]
ALIASES = ["al-1", "al-2", "al-3"]
ASKED = [
    "gpt-4o",
    "gpt-4.1-mini",
    "o3-mini",
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "claude-sonnet-4-5",
    "claude-newfamily-5",
    "deepseek-chat",
    "grok-4",
    "mistral-large-latest",
    "mystery-model",
    "openai/gpt-4o",
    "deepseek/deepseek-chat",
    "gemini/gemini-2.5-pro",
    "xai/grok-4",
    "team-x",
    "anthropic/claude-sonnet-4-5",
]


@st.composite
def deployment(draw: st.DrawFn) -> dict[str, Any]:
    provider = draw(st.sampled_from(sorted(MODELS)))
    params: dict[str, Any] = {"model": f"{provider}/{draw(st.sampled_from(MODELS[provider]))}"}
    key = draw(st.sampled_from([None, None, "env", "literal"]))
    if key == "env":
        params["api_key"] = "os.environ/" + draw(st.sampled_from(KEY_VARS))
    elif key == "literal":
        params["api_key"] = "lit-key-0"
    base = draw(st.sampled_from([None, None, None, "literal", "env"]))
    if base == "literal" or provider == "hosted_vllm" and base is None:
        params["api_base"] = "http://base.test:9/v1"
    elif base == "env":
        params["api_base"] = "os.environ/" + draw(st.sampled_from(BASE_VARS))
    entry: dict[str, Any] = {"model_name": draw(st.sampled_from(GROUPS)), "litellm_params": params}
    mode = draw(st.sampled_from(["chat"] * 6 + ["embedding", "rerank"]))
    if mode != "chat":
        entry["model_info"] = {"mode": mode}
    return entry


@st.composite
def scenario(draw: st.DrawFn) -> dict[str, Any]:
    # entries repeating a group and litellm_params share one LiteLLM deployment id, and which
    # of them the router then serves differs by path: not generated (the tool serves the first)
    drawn = draw(st.lists(deployment(), min_size=1, max_size=7))
    entries, idents = [], set()
    for entry in drawn:
        ident = json.dumps([entry["model_name"], entry["litellm_params"]], sort_keys=True)
        if ident not in idents:
            idents.add(ident)
            entries.append(entry)
    for pattern, model in draw(st.lists(st.sampled_from(WILDCARDS), max_size=3, unique=True)):
        entries.insert(
            draw(st.integers(0, len(entries))),
            {"model_name": pattern, "litellm_params": {"model": model}},
        )
    targets = GROUPS + ALIASES + ["gpt-4o", "gemini-2.5-flash", "openai/gpt-4.1-mini"]

    def alias_map() -> dict[str, str]:
        keys = draw(st.lists(st.sampled_from(ALIASES), max_size=3, unique=True))
        return {k: draw(st.sampled_from([t for t in targets if t != k])) for k in keys}

    main: dict[str, Any] = {}
    inc: dict[str, Any] = {}
    inc2: dict[str, Any] = {}
    split = draw(st.integers(0, len(entries)))
    use_include = draw(st.booleans())
    if use_include:
        main["model_list"], inc["model_list"] = entries[:split], entries[split:]
        if draw(st.booleans()):
            inc["router_settings"] = {"model_group_alias": alias_map()}
        if draw(st.booleans()):
            inc["include"] = ["inc2.yaml"]
            extra = draw(deployment())
            ident = json.dumps([extra["model_name"], extra["litellm_params"]], sort_keys=True)
            inc2["model_list"] = [extra] if ident not in idents else []
            if draw(st.booleans()):
                inc2["router_settings"] = {"model_group_alias": alias_map()}
        main["include"] = ["sub/inc.yaml"]
    else:
        main["model_list"] = entries
    if draw(st.booleans()):
        main["router_settings"] = {"model_group_alias": alias_map()}
    if draw(st.booleans()):
        var = draw(st.sampled_from(BASE_VARS))
        main["environment_variables"] = {var: f"http://{var.lower()}.cfg.test/v1"}
    env_keys = draw(st.lists(st.sampled_from(KEY_VARS), max_size=6, unique=True))
    env_bases = draw(st.lists(st.sampled_from(BASE_VARS), max_size=3, unique=True))
    env = {k: canary(k) for k in env_keys}
    env.update({b: f"http://{b.lower().replace('_', '-')}.test:9/v1" for b in env_bases})
    # every os.environ/ reference is set where the proxy runs: an unset one is a
    # deliberate difference (the tool refuses), tested on its own below
    all_entries = entries + inc2.get("model_list", [])
    for entry in all_entries:
        for key in ("api_key", "api_base"):
            ref = str(entry["litellm_params"].get(key) or "")
            if ref.startswith("os.environ/"):
                var = ref[len("os.environ/") :]
                if var not in env:
                    env[var] = (
                        canary(var) if key == "api_key" else f"http://{var.lower()}.ref.test/v1"
                    )
    return {"main": main, "inc": inc if use_include else None, "inc2": inc2 or None, "env": env}


# no shrinking: each example runs LiteLLM's loader, so shrinking a failure would take
# minutes; a failure is printed as generated, and hypothesis replays it from its database
@settings(
    max_examples=30,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(case=scenario())
def test_generated_configs_match_litellm(oracle: Oracle, case: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = root / "config.yaml"
        config.write_text(yaml.safe_dump(case["main"]))
        if case["inc"] is not None:
            (root / "sub").mkdir()
            (root / "sub" / "inc.yaml").write_text(yaml.safe_dump(case["inc"]))
        if case["inc2"] is not None:
            (root / "sub" / "inc2.yaml").write_text(yaml.safe_dump(case["inc2"]))
        names = sorted(set(GROUPS + ALIASES + ASKED))
        run_both(oracle, config, case["env"], names)


def test_include_override_changes_the_target_as_in_litellm(oracle: Oracle, tmp_path: Path) -> None:
    """The defect the issue names: an alias redefined in an included file."""
    (tmp_path / "more.yaml").write_text(
        "model_list:\n  - {model_name: g, litellm_params: {model: gemini/gemini-2.5-flash}}\n"
        "router_settings:\n  model_group_alias: {default: g}\n"
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        "include: [more.yaml]\nmodel_list:\n"
        "  - {model_name: r1, litellm_params: {model: deepseek/deepseek-reasoner}}\n"
        "router_settings:\n  model_group_alias: {default: r1}\n"
    )
    cfg = load_config(config)
    ours = resolve_name(cfg, "default", {}.get)
    assert ours.target is not None and ours.target.provider == "gemini"
    run_both(oracle, config, {}, ["default", "r1", "g"])
    assert json.dumps(cfg.section_sources["router_settings"].name) == '"more.yaml"'


def test_unset_environment_reference_is_refused_where_litellm_falls_back(
    oracle: Oracle, tmp_path: Path
) -> None:
    """``api_base: os.environ/VLLM_BASE`` with VLLM_BASE unset where the proxy runs: LiteLLM
    silently calls the provider's default endpoint (api.openai.com here). The tool refuses
    the route instead of planning a target the operator did not mean."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n  - {model_name: local, litellm_params: {model: openai/qwen, "
        "api_base: os.environ/VLLM_BASE}}\n"
    )
    answer = oracle.resolve(config, {}, ["local"])["local"]
    assert [t.base for t in answer.deployments] == ["https://api.openai.com"]
    ours = resolve_name(load_config(config), "local", {}.get)
    assert ours.target is None and ours.reason_code == NEEDS_BASE
    assert "VLLM_BASE" in (ours.reason or "")
