"""The runbook's happy path runs as written (issue 12).

Every ``layra-migrate`` line of docs/MIGRATION.md's "The happy path" is taken from the
document and run, in order, against the sandbox's realistic Layra data, the sandbox's
LiteLLM config and its provider stub; only the host paths (`/srv/layra/.env`,
`/srv/litellm/config.yaml`) are replaced by the sandbox's files, and the step ends with
the exit code the happy path gives for data that still holds unresolved names."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from layra_migrate.sandbox.layra_data import build_dataset, seed_database
from layra_migrate.sandbox.litellm_config import write_litellm_config
from layra_migrate.sandbox.provider_stub import ProviderStub
from layra_migrate.sandbox.run import ALREADY_DIRECT_KEY, SANDBOX_KEYS
from tests.conftest import REPO, run_cli

SECTION = (REPO / "docs" / "MIGRATION.md").read_text().split("## The happy path", 1)[1]
SECTION = SECTION.split("\n## ", 1)[0]


def happy_path_lines() -> list[str]:
    blocks = re.findall(r"```[a-z]*\n(.*?)```", SECTION, re.S)
    return [
        line.strip()
        for b in blocks
        for line in b.splitlines()
        if line.strip().startswith("layra-migrate ")
    ]


@pytest.fixture
def stub() -> Iterator[ProviderStub]:
    s = ProviderStub(
        valid_keys=frozenset([*SANDBOX_KEYS.values(), ALREADY_DIRECT_KEY]),
        behaviours={"deepseek-reasoner": "reasoning"},
    ).start()
    yield s
    s.stop()


def test_every_happy_path_command_runs_as_written(
    db: Any, mongo_uri: str, db_name: str, stub: ProviderStub, tmp_path: Path
) -> None:
    # The sandbox's data: configurations that already bypass the proxy point at the stub.
    root = stub.base_url.removesuffix("/v1")
    seed_database(
        db,
        build_dataset(
            users=12,
            seed=2026,
            direct_urls=[stub.base_url, root + "/v1/"],
            direct_keys=[ALREADY_DIRECT_KEY],
        ),
    )
    config = write_litellm_config(tmp_path / "litellm", provider_base=root)
    layra_env = tmp_path / "layra.env"
    # Layra's own spelling: MONGODB_URL host:port (no scheme), MONGODB_DB, provider keys.
    layra_env.write_text(
        "\n".join(
            [
                f"MONGODB_URL={mongo_uri.removeprefix('mongodb://').rstrip('/')}",
                f"MONGODB_DB={db_name}",
                *(f"{k}={v}" for k, v in SANDBOX_KEYS.items()),
            ]
        )
        + "\n"
    )
    ops = tmp_path / "ops"
    ops.mkdir()
    lines = happy_path_lines()
    ran: list[tuple[str, int]] = []
    for line in lines:
        argv = shlex.split(
            line.replace("/srv/layra/.env", str(layra_env)).replace(
                "/srv/litellm/config.yaml", str(config)
            )
        )[1:]
        if "--against-proxy" in argv or argv[0] == "decommission":
            # They need a running LiteLLM proxy / a LiteLLM stack on Docker:
            # tests/test_verify_against_proxy.py and tests/test_decommission*.py run them.
            continue
        if "--dry-run" in argv:
            # Step 5: without --skip-unresolved this data's plan is refused (exit 4).
            strict = [a for a in argv if a != "--skip-unresolved"]
            refused = run_cli(*strict, cwd=ops, env={"COLUMNS": "100"})
            assert refused.code == 4, refused.stdout + refused.stderr
            assert "[unresolved]" in refused.stdout
        if argv[0] == "rewrite" and "--dry-run" not in argv:
            argv.append("--yes")  # the happy path's "--yes in scripts": no terminal here
        result = run_cli(*argv, cwd=ops, env={"COLUMNS": "100"})
        ran.append(
            (
                argv[0]
                + (" --plan" if "--plan" in argv and argv[0] == "verify" else "")
                + (" --dry-run" if "--dry-run" in argv else ""),
                result.code,
            )
        )
        out = result.stdout + result.stderr
        if argv[0] == "verify":
            # The names the plan leaves unresolved (and entries without a URL) are
            # skipped, which the happy path says fails the run until --allow-skipped;
            # every probed target answers.
            assert result.code == 5, out
            assert re.search(r"\bfailed: 0\b", out), out
            assert re.search(r"\bskipped: [1-9]", out), out
        else:
            assert result.code == 0, f"{line}\n{out}"
    assert [name for name, _ in ran] == [
        "audit",
        "verify --plan",
        "rewrite --dry-run",
        "rewrite",
        "verify",
    ]
