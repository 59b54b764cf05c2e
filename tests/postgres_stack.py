"""A real PostgreSQL 15 (Debian's packages, layra_migrate/sandbox/postgres_image.py) in a
fake LiteLLM stack on the session's Docker engine, holding LiteLLM's own tables.

The root filesystem is built once per machine by mmdebstrap and cached by the
recipe's content key (``LAYRA_MIGRATE_IMAGE_CACHE``, default
``~/.cache/layra-migrate/images``); each engine imports it once (the tag carries the
key). Where mmdebstrap cannot run the tests skip with the reason; with ``CI=true``
they fail.

On a machine without the cached root filesystem (a fresh CI machine) the build is mostly
a download: it starts in the background as soon as collection shows a test that needs
it, and those tests run last, so the rest of the suite runs while it downloads.

The stack's ``db`` service is spelled like LiteLLM's docker-compose.yml: service
``db``, ``POSTGRES_USER=llmproxy``, ``POSTGRES_DB=litellm``, a password, a named
volume at ``/var/lib/postgresql/data``, the ``pg_isready`` health check.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from layra_migrate.sandbox import litellm_db as ldb
from layra_migrate.sandbox import postgres_image as pgi
from tests.docker_engine import Engine, FakeStack, destroy_stack, make_stack

PARAM_CANARY = "CANARYpassPARAMS0000"
PG_FIXTURES = {"pg_image", "pg_stack"}
_prebuild: threading.Thread | None = None


def _build_rootfs_quietly() -> None:
    try:
        pgi.ensure_rootfs()
    except pgi.ImageBuildError:
        pass  # the fixture calls ensure_rootfs again and reports the reason


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests on the real PostgreSQL last and start building its root filesystem
    now (in a thread: mmdebstrap is a subprocess, mostly waiting on the download)."""
    global _prebuild
    needs = [i for i in items if PG_FIXTURES & set(getattr(i, "fixturenames", ()))]
    if not needs:
        return
    items[:] = [i for i in items if i not in needs] + needs
    if _prebuild is None and pgi.cannot_build_reason() is None:
        _prebuild = threading.Thread(target=_build_rootfs_quietly, daemon=True)
        _prebuild.start()


@dataclass
class PgImage:
    ref: str
    rootfs: pgi.Rootfs
    import_seconds: float
    imported: bool


@dataclass
class PgStack:
    stack: FakeStack
    seed: ldb.Seed
    baseline: ldb.Snapshot
    engine: Engine
    notes: list[str] = field(default_factory=list)

    @property
    def db(self) -> str:
        return self.stack.db

    def snapshot(self, env: dict[str, str] | None = None) -> ldb.Snapshot:
        ldb.wait_ready(self.engine.client, self.db)
        return ldb.snapshot(self.engine.client, self.db, env=env)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"real PostgreSQL image required with CI=true: {reason}")
    pytest.skip(f"no real PostgreSQL image: {reason}")


def build_pg_image(engine: Engine) -> PgImage:
    if _prebuild is not None:
        _prebuild.join()  # ensure_rootfs below finds its result (or says why it failed)
    try:
        rootfs = pgi.ensure_rootfs()
    except pgi.ImageBuildError as exc:
        _unavailable(str(exc))
        raise  # unreachable: skip/fail raise
    t0 = time.monotonic()
    ref, imported = pgi.ensure_image(engine.client, rootfs)
    image = PgImage(ref, rootfs, time.monotonic() - t0, imported)
    sys.stderr.write(
        f"\n[postgres image] {ref}: root filesystem "
        f"{'built' if rootfs.built else 'cached'} in {rootfs.seconds:.1f}s, "
        f"{'imported' if imported else 'present'} in {image.import_seconds:.1f}s"
        f" (storage driver {engine.client.info().get('Driver')})\n"
    )
    return image


@pytest.fixture(scope="session")
def pg_image(engine: Engine) -> PgImage:
    return build_pg_image(engine)


def start_pg_stack(engine: Engine, image: PgImage, tmp: Path, **kw: Any) -> PgStack:
    stack = make_stack(engine.client, tmp, real_db_image=image.ref, **kw)
    try:
        ldb.wait_ready(engine.client, stack.db, 90)
        seed = ldb.seed_sql(param_canary=PARAM_CANARY)
        ldb.load(engine.client, stack.db, seed)
        baseline = ldb.snapshot(engine.client, stack.db)
    except BaseException:
        destroy_stack(engine.client, stack)
        raise
    assert baseline.counts == seed.counts
    return PgStack(stack, seed, baseline, engine)


@pytest.fixture(scope="session")
def pg_stack(
    engine: Engine, pg_image: PgImage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PgStack]:
    s = start_pg_stack(engine, pg_image, tmp_path_factory.mktemp("pgstack"))
    try:
        yield s
    finally:
        destroy_stack(engine.client, s.stack)


def fresh_postgres(
    engine: Engine, image: PgImage, name: str, *, user: str, password: str, dbname: str
) -> str:
    """An empty server from the same image (no network), ready."""
    api = engine.client.api
    c = api.create_container(
        image.ref,
        name=name,
        environment={"POSTGRES_USER": user, "POSTGRES_PASSWORD": password, "POSTGRES_DB": dbname},
        host_config=api.create_host_config(network_mode="none"),
    )
    api.start(c["Id"])
    ldb.wait_ready(engine.client, c["Id"], 60)
    return str(c["Id"])
