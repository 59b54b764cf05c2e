"""The migration author's API: typed, one field-spelling rule, steps found by what they are.

Pure logic (no servers): the typing gate on what `new` writes, the spelling rule
against what the app reads, and the decommission run's step lookup.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layra_migrate.decommission.models import RESTORE_SCHEMA, RunResult, StepKind, StepStatus
from layra_migrate.engine.discovery import default_dir, discover
from layra_migrate.engine.scaffold import create
from layra_migrate.locations import CAMEL, SNAKE, field_name, read_field

REPO = Path(__file__).resolve().parents[1]


def _mypy_strict(*paths: Path) -> tuple[int, str]:
    api = pytest.importorskip("mypy.api", reason="mypy is a dev extra: pip install -e '.[dev]'")
    # incremental, in the repository's own cache: the gate (scripts/test.sh) has already
    # analysed layra_migrate, so only the migration files are checked here
    out, err, code = api.run(
        [
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(REPO / ".mypy_cache"),
            *map(str, paths),
        ]
    )
    return code, out + err


def test_scaffold_and_0001_type_check_against_the_api(tmp_path: Path) -> None:
    """What `new` writes and the shipped 0001 pass mypy --strict against MigrationAPI; a
    migration that reads something the API does not offer does not."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    shutil.copy(default_dir() / "0001_litellm_to_direct.py", folder)
    new = create(folder, "point gemini at vertex").path
    assert [m.id for m in discover(folder)] == ["0001_litellm_to_direct", new.stem]
    code, out = _mypy_strict(folder / "0001_litellm_to_direct.py", new)
    assert code == 0, out
    # down() gets no plan: the Protocol says so, and mypy holds a migration to it.
    bad = folder / "0003_uses_internals.py"
    bad.write_text(
        "from layra_migrate.engine.api import DownAPI, MigrationAPI\n"
        'id = "0003_uses_internals"\n'
        'description = "x"\n'
        "async def up(ctx: MigrationAPI) -> None:\n"
        "    ctx.stats.documents += 1\n"
        "async def down(ctx: DownAPI) -> None:\n"
        "    ctx.plan.target('x')\n"
    )
    code, out = _mypy_strict(bad)
    assert code != 0
    assert '"MigrationAPI" has no attribute "stats"' in out
    assert '"DownAPI" has no attribute "plan"' in out


values = st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=5))
logical = st.sampled_from(["model_url", "model_name", "api_key", "model_id"])


@st.composite
def configs(draw: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    for name in ("model_url", "model_name", "api_key", "model_id"):
        for spelling in (CAMEL, SNAKE):
            if draw(st.booleans()):
                cfg[getattr(spelling, name)] = draw(values)
    return cfg


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), logical)
def test_the_key_written_is_the_key_the_app_reads(cfg: dict[str, Any], name: str) -> None:
    """One spelling rule: writing the key field_name picks changes what read_field (the
    app's reading) returns, whichever spellings the copy holds, and only that key."""
    key = field_name(cfg, name)
    written = dict(cfg)
    written[key] = "https://new.example/v1"
    assert read_field(written, name) == "https://new.example/v1"
    assert {k for k in written if written.get(k) != cfg.get(k) or k not in cfg} == {key}


def test_steps_are_found_by_kind_and_target_not_position() -> None:
    result = RunResult(RESTORE_SCHEMA, "p", dry_run=False)
    verify = result.step("verify archive", kind=StepKind.VERIFY)
    stop_db = result.step("stop db", ["db"], kind=StepKind.STOP, target="db")
    stop_proxy = result.step("stop proxy", ["proxy"], kind=StepKind.STOP, target="proxy")
    assert result.find(StepKind.STOP, "proxy") is stop_proxy
    assert result.find(StepKind.STOP, "db") is stop_db
    assert result.find(StepKind.VERIFY) is verify
    with pytest.raises(LookupError, match="no remove_volumes step planned"):
        result.find(StepKind.REMOVE_VOLUMES)
    stop_proxy.done("stopped")
    assert [s.as_dict()["status"] for s in result.steps] == ["pending", "pending", "done"]
    assert stop_proxy.status is StepStatus.DONE
