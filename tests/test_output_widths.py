"""Human output never hides or mangles data: at 80 columns, at 200, and in a pipe.

Every command runs in process (Typer's CliRunner, stdout is not a terminal) on the
sandbox's realistic Layra data, with ``COLUMNS=80``, ``COLUMNS=200`` and no
``COLUMNS`` at all (a pipe or a CI log). Every identifier the result holds (model
names, key variable names, base URLs, ids, paths, counts) must appear whole, and
no cell may be cut with "…". Decommission and restore, which need Docker, are
checked through their renderers with a result object shaped like a real run's.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from layra_migrate.cli import app
from layra_migrate.sandbox.layra_data import build_dataset, seed_database
from layra_migrate.sandbox.litellm_config import write_litellm_config
from layra_migrate.sandbox.provider_stub import ProviderStub
from layra_migrate.sandbox.run import (
    ALREADY_DIRECT_KEY,
    SANDBOX_KEYS,
    edit_plan_like_an_operator,
)
from tests.conftest import assert_no_canary

MODES = {"80": "80", "200": "200", "pipe": None}
LONG_WORD = 40  # a line may pass the width only to keep a longer word (URL, path) whole


@pytest.fixture(scope="module")
def stub() -> Iterator[ProviderStub]:
    with ProviderStub(
        valid_keys=frozenset([*SANDBOX_KEYS.values(), ALREADY_DIRECT_KEY]),
        behaviours={"deepseek-reasoner": "reasoning"},
    ) as s:
        yield s


class Runner:
    def __init__(self, env: dict[str, str | None], cwd: Path, stub_url: str) -> None:
        self.stub_url = stub_url
        self.env = env
        self.cwd = cwd
        self.runner = CliRunner()

    def __call__(
        self,
        *args: str,
        mode: str | None = None,
        code: int | tuple[int, ...] = 0,
        **env: str | None,
    ) -> Any:
        import os

        full = {**self.env, **env}
        if mode is not None:
            full["COLUMNS"] = MODES[mode]
        old = Path.cwd()
        os.chdir(self.cwd)
        try:
            r = self.runner.invoke(app, list(args), env=full, catch_exceptions=False)
        finally:
            os.chdir(old)
        codes = code if isinstance(code, tuple) else (code,)
        assert r.exit_code in codes, f"{args}: exit {r.exit_code}\n{r.stdout}\n{r.stderr}"
        assert_no_canary(r.stdout, r.stderr)
        return r


@pytest.fixture
def job(db: Any, mongo_uri: str, db_name: str, tmp_path: Path, stub: ProviderStub) -> Runner:
    stub_root = stub.base_url.removesuffix("/v1")
    data = build_dataset(
        users=40,
        seed=11,
        direct_urls=[stub.base_url, stub_root + "/v1/"],
        direct_keys=[ALREADY_DIRECT_KEY],
    )
    seed_database(db, data)
    config = write_litellm_config(tmp_path / "litellm", provider_base=stub_root)
    env: dict[str, str | None] = {
        k: None
        for k in (
            "COLUMNS",
            "LINES",
            "FORCE_COLOR",
            "TTY_COMPATIBLE",
            "LAYRA_MIGRATE_REDIS_URL",
            "REDIS_URL",
            "MONGODB_URL",
            "MONGODB_DB",
        )
    }
    env.update(
        {
            "NO_COLOR": "1",
            "LAYRA_MIGRATE_MONGO_URI": mongo_uri,
            "LAYRA_MIGRATE_DB": db_name,
            "LAYRA_MIGRATE_LITELLM_CONFIG": str(config),
            **SANDBOX_KEYS,
        }
    )
    return Runner(env, tmp_path, stub.base_url)


def assert_whole(text: str, identifiers: set[str], mode: str) -> None:
    """Every identifier appears whole; nothing is cut; lines keep to the width."""
    assert "…" not in text, f"[{mode}] a cell was cut:\n{text}"
    missing = sorted(i for i in identifiers if i not in text)
    assert not missing, f"[{mode}] not shown whole: {missing}\n{text}"
    if MODES[mode] is not None:
        width = int(MODES[mode])
        for line in text.splitlines():
            if len(line) > width:
                assert max(map(len, line.split())) > LONG_WORD, (
                    f"[{mode}] line of {len(line)} > {width} columns without a long word: {line!r}"
                )


def rows(text: str) -> list[str]:
    return text.splitlines()


@pytest.mark.parametrize("mode", list(MODES))
def test_every_command_shows_every_identifier_whole(
    job: Runner, db: Any, tmp_path: Path, mode: str
) -> None:
    plan = tmp_path / "plan.yaml"
    audit = job("audit", "--json", "--plan-out", str(plan), mode=mode).stdout
    report = json.loads(audit)
    edit_plan_like_an_operator(plan, job.stub_url, _Quiet())
    plan_doc = yaml.safe_load(plan.read_text())

    # audit: locations, model names, key variables, base URLs, counts
    human = job("audit", mode=mode).stdout
    ids = set(report["locations"]) | {m["model_name"] for m in report["models"]}
    for m in report["models"]:
        r = m["resolution"]
        ids.add(str(m["via_proxy"]))
        if r["status"] == "resolved":
            ids |= {r["api_key_env"], r["base_url"], r["model"]}
    assert_whole(human, ids, mode)
    if mode == "pipe":  # plain full lines: each model's row holds its name and target URL
        for m in report["models"]:
            r = m["resolution"]
            if r["status"] == "resolved":
                assert any(
                    m["model_name"] in line and r["base_url"] in line for line in rows(human)
                ), m["model_name"]

    # verify --plan: providers, base URLs, model ids
    targets = {name: e["target"] for name, e in plan_doc["models"].items() if e.get("target")}
    human = job(
        "verify", "--plan", str(plan), "--allow-skipped", "--probe-timeout", "10", mode=mode
    ).stdout
    assert_whole(
        human,
        {t["base_url"] for t in targets.values()}
        | {t["model"] for t in targets.values()}
        | {t["provider"] for t in targets.values()},
        mode,
    )

    # rewrite --dry-run: model names, documents' ids, the new URLs
    changes = json.loads(
        job("rewrite", "--plan", str(plan), "--dry-run", "--skip-unresolved", "--json").stdout
    )["changes"]
    some_ids = {c["doc_id"] for c in changes[::17]}
    human = job("rewrite", "--plan", str(plan), "--dry-run", "--skip-unresolved", mode=mode).stdout
    assert_whole(
        human,
        set(targets)
        | {t["base_url"] for t in targets.values()}
        | some_ids
        | {"0001_litellm_to_direct"},
        mode,
    )

    # rewrite for real, status, rollback
    human = job("rewrite", "--plan", str(plan), "--skip-unresolved", "--yes", mode=mode).stdout
    assert_whole(human, {"0001_litellm_to_direct"}, mode)
    status = json.loads(job("status", "--json").stdout)
    human = job("status", mode=mode).stdout
    ids = {m["id"] for m in status["migrations"]} | {db.name}
    applied = [m for m in status["migrations"] if m["state"] == "applied"]
    assert applied
    ids.add(str(applied[0]["applied"]["counts"]["documents"]))
    assert_whole(human, ids, mode)

    human = job("verify", "--allow-skipped", "--probe-timeout", "10", mode=mode, code=(0, 5)).stdout
    assert_whole(human, {t["base_url"] for t in targets.values()}, mode)

    human = job("rollback", "--dry-run", mode=mode).stdout
    assert_whole(human, {"0001_litellm_to_direct"} | some_ids, mode)
    human = job("rollback", "--yes", mode=mode).stdout
    assert_whole(human, {"0001_litellm_to_direct"}, mode)

    scratch = f"{db.name}_chk_{mode}"
    human = job("check", "--plan", str(plan), "--scratch-db", scratch, mode=mode).stdout
    assert_whole(human, {scratch, "claude-sonnet-4", "voyage-3"}, mode)

    human = job("unlock", "--if-stale", mode=mode).stdout
    assert "no lock held" in human

    folder = tmp_path / f"project-{mode}" / "migrations"
    human = job(
        "new",
        "point_gemini_at_vertex_with_a_long_descriptive_name",
        "--migrations-dir",
        str(folder),
        mode=mode,
    ).stdout
    created = next(folder.glob("*_point_gemini_at_vertex_with_a_long_descriptive_name.py"))
    assert_whole(human, {str(created)}, mode)


class _Quiet:
    def print(self, *args: Any, **kwargs: Any) -> None:
        pass


# -- decommission and restore, through their renderers -------------------------------------


def _run_result() -> Any:
    from layra_migrate.decommission.models import ContainerReport, RunResult, Step

    names = [
        "litellm-stack-with-a-long-project-name-litellm-proxy-1",
        "litellm-stack-with-a-long-project-name-postgres-database-1",
        "litellm-stack-with-a-long-project-name-redis-cache-1",
    ]
    result = RunResult(
        schema="layra-migrate/decommission/v1",
        project="litellm-stack-with-a-long-project-name",
        dry_run=False,
    )
    for name, role in zip(names, ("proxy", "database", "cache"), strict=True):
        result.containers.append(
            ContainerReport(
                name=name,
                role=role,
                state_before="running",
                state_after="exited",
                restart_policy_before="unless-stopped",
                restart_policy_after="no",
            )
        )
    result.steps = [
        Step(name="stop_proxy", status="done", resources=[names[0]]),
        Step(
            name="dump_database",
            status="done",
            detail="pg_dump -Fc of litellm_database_with_long_name: "
            "/srv/archives/litellm-archive-20261130T120000Z/"
            "database/litellm.dump (1234567 bytes)",
        ),
    ]
    result.volumes = [
        {
            "name": "litellm-stack-with-a-long-project-name_postgres_data",
            "mounted_by": [{"container": names[1], "destination": "/var/lib/postgresql/data"}],
            "size": 123456789,
            "labels": {"com.docker.compose.project": "x"},
        }
    ]
    result.archive = "/srv/archives/litellm-archive-20261130T120000Z"
    result.archive_verified = True
    return result


@pytest.mark.parametrize("mode", list(MODES))
def test_decommission_and_restore_views_keep_names_whole(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from layra_migrate.render import Output
    from layra_migrate.views.decommission import render_plan, render_restore, render_result

    if MODES[mode] is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", MODES[mode] or "")
    result = _run_result()
    ids = {c.name for c in result.containers} | {
        result.archive,
        result.project,
        result.volumes[0]["name"],
        "/var/lib/postgresql/data",
    }
    for render in (render_plan, render_result, render_restore):
        buf = io.StringIO()
        monkeypatch.setattr("sys.stdout", buf)
        render(result, Output())
        volume = {result.volumes[0]["name"], "/var/lib/postgresql/data"}  # the plan lists them
        assert_whole(buf.getvalue(), ids - (volume if render is not render_plan else set()), mode)


# -- the width rule itself -------------------------------------------------------------------


def test_pipe_gets_full_lines_and_columns_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.table import Table

    from layra_migrate.render import PLAIN_WIDTH, Output

    table = Table(title="t")
    for h in ("model name", "direct target"):
        table.add_column(h)
    long_url = "https://generativelanguage.googleapis.com/v1beta/openai/" + "x" * 40
    table.add_row("gemini-2.5-pro-preview-06-05", long_url)

    monkeypatch.delenv("COLUMNS", raising=False)
    buf = io.StringIO()
    monkeypatch.setattr("sys.stdout", buf)
    out = Output()
    assert out.out.width == PLAIN_WIDTH  # not a terminal, no COLUMNS: never 80
    out.table(table)
    assert any(
        "gemini-2.5-pro-preview-06-05" in line and long_url in line
        for line in buf.getvalue().splitlines()
    )

    monkeypatch.setenv("COLUMNS", "60")
    buf = io.StringIO()
    monkeypatch.setattr("sys.stdout", buf)
    out = Output()
    assert out.out.width == 60
    out.table(table)
    text = buf.getvalue()
    # the URL cannot fit in a 60-column table: blocks, one field a line, nothing cut
    assert "  direct target:" in text and long_url in text and "…" not in text
    assert re.search(r"^gemini-2\.5-pro-preview-06-05$", text, re.M)


@pytest.mark.parametrize("no_color", [True, False])
def test_no_color_is_respected(no_color: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from layra_migrate.render import Output

    monkeypatch.setenv("FORCE_COLOR", "1")  # as CI systems set it for coloured logs
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    buf = io.StringIO()
    monkeypatch.setattr("sys.stdout", buf)
    Output().out.print("[green]resolved[/] deepseek-reasoner")
    colour = re.search(r"\x1b\[(3\d|9\d)", buf.getvalue())
    assert (colour is None) == no_color, repr(buf.getvalue())
    assert "deepseek-reasoner" in buf.getvalue()
