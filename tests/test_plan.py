"""The plan file: round trip, validation, staleness, key resolution (pure logic)."""

from __future__ import annotations

from pathlib import Path

import pytest

from layra_migrate.audit import AuditReport, ModelUsage
from layra_migrate.errors import ConfigError, RefusedError
from layra_migrate.litellm.resolve import Resolution, Target
from layra_migrate.plan import (
    PLACEHOLDER_KEY,
    check_fresh,
    plan_from_report,
    read_plan,
    resolve_keys,
    write_plan,
)
from layra_migrate.proxy import ProxySet
from layra_migrate.settings import Environment

DS = Target("deepseek", "https://api.deepseek.com", "deepseek-reasoner", "DEEPSEEK_API_KEY")
OLLAMA_LOCAL = Target(
    "ollama_chat", "http://localhost:11434/v1", "qwen3", "OLLAMA_API_KEY", key_required=False
)


def report(*models: ModelUsage, db: str = "layra") -> AuditReport:
    return AuditReport(db, ProxySet.build(), {}, list(models), [], {}, None, [])


def usage(name: str, target: Target | None, reason: str | None = None) -> ModelUsage:
    return ModelUsage(
        name,
        via_proxy=3,
        resolution=Resolution(name, target, "no_route" if reason else None, reason),
    )


def test_round_trip_keeps_targets_and_reasons(tmp_path: Path) -> None:
    r = report(
        usage("deepseek-reasoner", DS),
        usage("local", OLLAMA_LOCAL),
        usage("gpt-4o", None, "config.yaml has no route"),
    )
    path = write_plan(plan_from_report(r), tmp_path / "plan.yaml")
    plan = read_plan(path)
    assert plan.target("deepseek-reasoner") == DS
    assert plan.target("local") == OLLAMA_LOCAL
    assert plan.target("gpt-4o") is None and plan.entries["gpt-4o"].reason
    assert plan.proxy.matches("http://litellm-proxy:4000")
    assert plan.unresolved_names() == ["gpt-4o"]


@pytest.mark.parametrize(
    "body, message",
    [
        ("format: other\n", "not a layra-migrate plan"),
        ("format: layra-migrate/plan/v1\nproxy_urls: []\n", "proxy_urls"),
        ("format: layra-migrate/plan/v1\nproxy_urls: [nope]\n", "not an http"),
        (
            "format: layra-migrate/plan/v1\nproxy_urls: [http://p:4000]\nmodels:\n  m:\n"
            "    target: {provider: x, base_url: http://x, model: m, api_key_env: sk-abc123}\n",
            "variable NAME",
        ),
        (
            "format: layra-migrate/plan/v1\nproxy_urls: [http://p:4000]\nmodels:\n  m:\n"
            "    target: {provider: x, model: m}\n",
            "lacks base_url",
        ),
        (
            "format: layra-migrate/plan/v1\nproxy_urls: [http://p:4000]\nmodels:\n  m:\n"
            "    target: {provider: x, base_url: http://x, model: m}\n",
            "api_key_env is required",
        ),
        ("!!python/object/apply:os.system ['true']\n", "invalid plan YAML"),
        ("format: [\n", "invalid plan YAML"),
    ],
)
def test_invalid_plans_are_rejected_with_the_reason(
    tmp_path: Path, body: str, message: str
) -> None:
    p = tmp_path / "plan.yaml"
    p.write_text(body)
    with pytest.raises(ConfigError, match=message):
        read_plan(p)


def test_missing_plan_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="audit --plan-out"):
        read_plan(tmp_path / "missing.yaml")


def test_stale_plan_and_wrong_database_are_refused(tmp_path: Path) -> None:
    plan = read_plan(
        write_plan(plan_from_report(report(usage("deepseek-reasoner", DS))), tmp_path / "p.yaml")
    )
    check_fresh(plan, report(usage("deepseek-reasoner", DS)))
    with pytest.raises(RefusedError, match="stale plan.*new-model"):
        check_fresh(plan, report(usage("deepseek-reasoner", DS), usage("new-model", None, "x")))
    with pytest.raises(RefusedError, match="database"):
        check_fresh(plan, report(usage("deepseek-reasoner", DS), db="other"))


def test_keys_are_read_by_name_and_missing_ones_refuse(tmp_path: Path) -> None:
    plan = read_plan(
        write_plan(
            plan_from_report(report(usage("a", DS), usage("b", OLLAMA_LOCAL))), tmp_path / "p.yaml"
        )
    )
    with pytest.raises(RefusedError, match="DEEPSEEK_API_KEY"):
        resolve_keys(plan, Environment({}, None))
    keys = resolve_keys(plan, Environment({"DEEPSEEK_API_KEY": "sk-CANARYplanKEY0000000000"}, None))
    assert keys.for_target(DS) == "sk-CANARYplanKEY0000000000"
    assert keys.for_target(OLLAMA_LOCAL) == PLACEHOLDER_KEY  # local server: no key needed
    # only the names a run needs are checked
    resolve_keys(plan, Environment({}, None), names=["b"])
