"""`decommission` and `restore` against a real PostgreSQL holding LiteLLM's own tables.

The database is Debian's PostgreSQL 15 (tests/postgres_stack.py): the dump is the real
``pg_dump -Fc`` while the server runs, checked by the real ``pg_restore --list``;
restore brings the rows back (row counts and a checksum of every spend log row), and
the archived dump restores into a fresh, empty server with ``pg_restore`` (the
runbook's way to keep the data without the proxy). Faults: a password that no longer
logs in, a database that refuses connections, a full archive disk.

One stack for the session (tests/postgres_stack.py); every test leaves it running as
it found it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from layra_migrate.decommission.archive import verify_archive
from layra_migrate.decommission.dump import run_exec
from layra_migrate.sandbox import litellm_db as ldb
from tests.conftest import CliResult, assert_no_canary
from tests.docker_engine import DB_PASSWORD, Engine, state, volume_exists
from tests.postgres_stack import PgImage, PgStack, fresh_postgres

pytestmark = pytest.mark.docker

TABLES = list(ldb.TABLES)


@pytest.fixture(scope="module")
def lm(
    engine: Engine, mongo_uri: str, sync_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """The CLI in-process (Typer's runner) against this engine and an empty database."""
    from typer.testing import CliRunner

    from layra_migrate.cli import app

    dbname = f"t_pg_{uuid.uuid4().hex[:10]}"
    cwd = tmp_path_factory.mktemp("cwd")
    env = {
        "DOCKER_HOST": engine.host,
        "LAYRA_MIGRATE_MONGO_URI": mongo_uri,
        "LAYRA_MIGRATE_DB": dbname,
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }

    def _run(*args: str) -> CliResult:
        old = os.getcwd()
        os.chdir(cwd)
        try:
            r = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
        finally:
            os.chdir(old)
        return CliResult(r.exit_code, r.stdout, r.stderr)

    yield _run
    sync_client.drop_database(dbname)


def _step(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    found = [s for s in data["steps"] if s["name"].startswith(prefix)]
    assert found, f"no step starting with {prefix!r}: {[s['name'] for s in data['steps']]}"
    return found[0]


def _read_member(root: Path, rel: str) -> bytes:
    return (root / rel).read_bytes()


def _assert_running_as_before(pg: PgStack) -> None:
    client = pg.engine.client
    assert state(client, pg.stack.db) == ("running", "unless-stopped")
    assert state(client, pg.stack.proxy) == ("running", "always")
    assert state(client, pg.stack.cache) == ("running", "always")


@dataclass
class FullRun:
    archive: Path
    decommission: dict[str, Any]
    restore: dict[str, Any]
    before: ldb.Snapshot
    after: ldb.Snapshot
    seconds: float
    stderr: str


@pytest.fixture(scope="module")
def full_run(pg_stack: PgStack, lm: Any, tmp_path_factory: pytest.TempPathFactory) -> FullRun:
    """decommission --remove --remove-volumes, then restore: the stack is back after it."""
    before = pg_stack.snapshot()
    archive = tmp_path_factory.mktemp("pgarch") / "archive"
    t0 = time.monotonic()
    r = lm(
        "decommission",
        "--project",
        pg_stack.stack.project,
        "--yes",
        "--remove",
        "--remove-volumes",
        "--archive-dir",
        str(archive),
        "--json",
    )
    assert r.code == 0, r.stderr + r.stdout
    dec = r.json()
    client = pg_stack.engine.client
    gone = {n: state(client, n)[0] for n in (pg_stack.stack.db, pg_stack.stack.proxy)}
    assert gone == {pg_stack.stack.db: "missing", pg_stack.stack.proxy: "missing"}
    assert not volume_exists(client, f"{pg_stack.stack.project}_pgdata")
    rr = lm("restore", str(archive), "--yes", "--json")
    assert rr.code == 0, rr.stderr + rr.stdout
    after = pg_stack.snapshot()
    return FullRun(
        archive, dec, rr.json(), before, after, time.monotonic() - t0, r.stderr + rr.stderr
    )


def test_dry_run_shows_why_each_container_has_its_role(pg_stack: PgStack, lm: Any) -> None:
    r = lm("decommission", "--project", pg_stack.stack.project, "--dry-run", "--json")
    assert r.code == 0, r.stderr
    rows = {c["name"]: c for c in r.json()["containers"]}
    db = rows[pg_stack.stack.db]
    assert db["role"] == "database"
    ev = " | ".join(db["evidence"])
    for signal in (
        "PGDATA",
        "POSTGRES_USER",
        "mount at /var/lib/postgresql/data",
        "health check pg_isready",
        "command runs postgres",
    ):
        assert signal in ev, ev
    assert rows[pg_stack.stack.proxy]["role"] == "proxy"
    assert "LITELLM_MASTER_KEY" in " ".join(rows[pg_stack.stack.proxy]["evidence"])
    assert rows[pg_stack.stack.cache]["role"] == "cache"
    _assert_running_as_before(pg_stack)
    human = lm("decommission", "--project", pg_stack.stack.project, "--dry-run")
    assert human.code == 0
    assert "why this role" in human.stdout and "health check pg_isready" in human.stdout
    assert_no_canary(r.stdout, r.stderr, human.stdout, human.stderr)


def test_real_pg_dump_while_running_then_volume_after_clean_stop(full_run: FullRun) -> None:
    dec = full_run.decommission
    names = [s["name"] for s in dec["steps"]]
    dump_i = next(i for i, n in enumerate(names) if n.startswith("dump "))
    db_stop_i = next(i for i, n in enumerate(names) if n.startswith("stop ") and "database" in n)
    assert dump_i < db_stop_i  # dumped while the database ran
    dump = _step(dec, "dump ")
    assert dump["status"] == "done", dump
    assert "pg_dump -Fc of 'litellm'" in dump["detail"]
    manifest = json.loads((full_run.archive / "manifest.json").read_text())
    (entry,) = manifest["dumps"]
    assert entry["status"] == "done" and entry["entries"] >= 4 * 2  # table + data per table
    dump_bytes = _read_member(full_run.archive, entry["members"][0])
    assert dump_bytes[:5] == b"PGDMP"  # custom format, written by the real pg_dump
    globals_sql = _read_member(full_run.archive, entry["members"][1]).decode()
    assert "CREATE ROLE llmproxy" in globals_sql
    assert _step(dec, "archive volumes")["status"] == "done"
    assert dec["archive_verified"] is True
    verify_archive(full_run.archive)  # raises on any mismatch
    # The volume tar holds a cleanly stopped cluster: PG_VERSION and the control file.
    with tarfile.open(full_run.archive / f"volumes/{manifest['project']}_pgdata.tar") as tf:
        members = set(tf.getnames())
    assert "data/PG_VERSION" in members and "data/global/pg_control" in members
    assert_no_canary(json.dumps(dec), json.dumps(manifest), full_run.stderr, globals_sql)
    assert DB_PASSWORD not in json.dumps(manifest)


def test_restore_brings_every_row_back(full_run: FullRun, pg_stack: PgStack) -> None:
    assert full_run.restore["exit_code"] == 0
    assert full_run.before.counts == pg_stack.seed.counts
    assert full_run.after.counts == full_run.before.counts
    assert full_run.after.spend_checksum == full_run.before.spend_checksum
    assert full_run.after.counts["LiteLLM_SpendLogs"] == 300
    _assert_running_as_before(pg_stack)


def test_archived_dump_restores_into_a_fresh_postgres(
    full_run: FullRun, engine: Engine, pg_image: PgImage
) -> None:
    """The runbook's way to keep LiteLLM's data without the proxy: pg_restore into any
    empty PostgreSQL (here another server with another owner)."""
    manifest = json.loads((full_run.archive / "manifest.json").read_text())
    dump_rel = manifest["dumps"][0]["members"][0]
    name = f"keep-{uuid.uuid4().hex[:8]}"
    cid = fresh_postgres(engine, pg_image, name, user="keeper", password="keeper-pw", dbname="keep")
    client = engine.client
    try:
        data = _read_member(full_run.archive, dump_rel)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            info = tarfile.TarInfo("litellm.dump")
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
        assert client.api.put_archive(cid, "/tmp", buf.getvalue())
        listing, out = run_exec(client, cid, ["pg_restore", "--list", "/tmp/litellm.dump"])
        assert out.exit_code == 0, out.stderr
        text = listing.decode()
        for t in TABLES:
            assert f"TABLE public {t} " in text or f'TABLE public "{t}" ' in text, t
            assert f"TABLE DATA public {t} " in text or f'TABLE DATA public "{t}" ' in text
        _o, out = run_exec(
            client,
            cid,
            [
                "pg_restore",
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "-U",
                "keeper",
                "-d",
                "keep",
                "/tmp/litellm.dump",
            ],
        )
        assert out.exit_code == 0, out.stderr
        got = ldb.snapshot(client, cid, user="keeper", dbname="keep")
        assert got == full_run.before
    finally:
        client.api.remove_container(cid, force=True, v=True)


# -- faults: each gives its documented outcome and loses nothing -----------------------


def _decommission_then_restore(
    pg: PgStack, lm: Any, archive: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    r = lm(
        "decommission",
        "--project",
        pg.stack.project,
        "--yes",
        "--archive-dir",
        str(archive),
        "--json",
    )
    assert r.code == 0, r.stderr + r.stdout
    data = r.json()
    assert data["archive_verified"] is True
    verify_archive(archive)
    assert state(pg.engine.client, pg.stack.db) == ("exited", "no")
    rr = lm("restore", str(archive), "--yes", "--json")
    assert rr.code == 0, rr.stderr + rr.stdout
    assert_no_canary(r.stdout, r.stderr, rr.stdout, rr.stderr)
    return data


def _volume_only(pg: PgStack, data: dict[str, Any], archive: Path, reason: str) -> None:
    dump = _step(data, "dump ")
    assert dump["status"] == "skipped", dump
    assert "the volume copy after the clean stop is the fallback" in dump["detail"]
    assert any(w.startswith(f"no logical dump of {pg.stack.db}") for w in data["warnings"])
    manifest = json.loads((archive / "manifest.json").read_text())
    assert manifest["dumps"][0]["reason"] == reason
    assert not (archive / "database").exists() or not any((archive / "database").iterdir())
    assert (archive / f"volumes/{pg.stack.project}_pgdata.tar").stat().st_size > 1_000_000


def test_wrong_password_dump_skipped_volume_kept_nothing_lost(
    pg_stack: PgStack, lm: Any, tmp_path: Path
) -> None:
    """The role's password was changed after the container was created and local
    connections need it: pg_dump cannot log in; the run goes on with the volume copy."""
    client, db = pg_stack.engine.client, pg_stack.db
    rotated = "rotated-elsewhere-0"
    ldb.psql(client, db, f"ALTER ROLE llmproxy PASSWORD '{rotated}'")
    run_exec(
        client,
        db,
        [
            "sed",
            "-i",
            "s/^local\\(.*\\)trust$/local\\1scram-sha-256/",
            "/var/lib/postgresql/data/pg_hba.conf",
        ],
    )
    new_pw = {"PGPASSWORD": rotated}
    ldb.psql(client, db, "SELECT pg_reload_conf()", env=new_pw)
    try:
        with pytest.raises(ldb.SqlError, match="password authentication failed"):
            ldb.psql(client, db, "SELECT 1", env={"PGPASSWORD": DB_PASSWORD})
        data = _decommission_then_restore(pg_stack, lm, tmp_path / "arch")
        _volume_only(pg_stack, data, tmp_path / "arch", "auth_failed")
        detail = _step(data, "dump ")["detail"]
        assert "POSTGRES_PASSWORD does not log in as llmproxy" in detail
        assert rotated not in json.dumps(data)
        assert pg_stack.snapshot(env=new_pw) == pg_stack.baseline
    finally:
        ldb.wait_ready(client, db)
        ldb.psql(client, db, f"ALTER ROLE llmproxy PASSWORD '{DB_PASSWORD}'", env=new_pw)
        run_exec(
            client,
            db,
            [
                "sed",
                "-i",
                "s/^local\\(.*\\)scram-sha-256$/local\\1trust/",
                "/var/lib/postgresql/data/pg_hba.conf",
            ],
        )
        ldb.psql(client, db, "SELECT pg_reload_conf()", env={"PGPASSWORD": DB_PASSWORD})
    _assert_running_as_before(pg_stack)


def test_database_refusing_connections_dump_skipped_nothing_lost(
    pg_stack: PgStack, lm: Any, tmp_path: Path
) -> None:
    client, db = pg_stack.engine.client, pg_stack.db
    ldb.psql(client, db, "ALTER DATABASE litellm ALLOW_CONNECTIONS false", dbname="postgres")
    try:
        data = _decommission_then_restore(pg_stack, lm, tmp_path / "arch")
        _volume_only(pg_stack, data, tmp_path / "arch", "refuses_connections")
        assert "refuses connections" in _step(data, "dump ")["detail"]
    finally:
        ldb.wait_ready(client, db)
        ldb.psql(client, db, "ALTER DATABASE litellm ALLOW_CONNECTIONS true", dbname="postgres")
    assert pg_stack.snapshot() == pg_stack.baseline
    _assert_running_as_before(pg_stack)


def _tmpfs(path: Path, size: int) -> None:
    path.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
            check=True,
            capture_output=True,
            timeout=10,
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"cannot mount a small tmpfs for the full-disk case: {exc}")


def _pg_dump_processes(engine: Engine, container: str) -> list[str]:
    out, _ = run_exec(engine.client, container, ["sh", "-c", "cat /proc/[0-9]*/comm 2>/dev/null"])
    return [line for line in out.decode().split() if line.startswith("pg_dump")]


@pytest.mark.parametrize("where", ["dump", "volumes"])
def test_full_disk_rolls_back_and_loses_nothing(
    pg_stack: PgStack, lm: Any, tmp_path: Path, full_run: FullRun, where: str
) -> None:
    """The archive folder fills up while the dump streams in (the database is running)
    or while the volumes are copied (everything is stopped): exit 5, rolled back, the
    stack runs again with every row, the archive is marked INCOMPLETE."""
    manifest = json.loads((full_run.archive / "manifest.json").read_text())

    def pages(p: Path) -> int:  # tmpfs stores whole pages per file
        return -(-p.stat().st_size // 4096)

    before_dump = sum(
        pages(full_run.archive / f"containers/{c['name']}.inspect.json")
        for c in manifest["containers"]
    )
    before_dump += pages(full_run.archive / "manifest.json") + 1  # + INCOMPLETE
    dump = full_run.archive / manifest["dumps"][0]["members"][0]
    if where == "dump":  # half the dump fits
        size = (before_dump + pages(dump) // 2) * 4096
    else:  # the dumps fit, the database volume does not
        size = (before_dump + pages(dump) + 64) * 4096
    archive = tmp_path / "small"
    _tmpfs(archive, size)
    try:
        r = lm(
            "decommission",
            "--project",
            pg_stack.stack.project,
            "--yes",
            "--archive-dir",
            str(archive),
            "--json",
        )
        assert r.code == 5, r.stderr + r.stdout
        data = r.json()
        failed = [s for s in data["steps"] if s["status"] == "failed"]
        assert failed and "No space left on device" in failed[0]["detail"], failed
        assert failed[0]["name"].startswith("dump " if where == "dump" else "archive volumes")
        assert data["rolled_back"] is True and data["archive_verified"] is False
        assert (archive / "INCOMPLETE").exists()
        ldb.wait_ready(pg_stack.engine.client, pg_stack.db)
        _assert_running_as_before(pg_stack)
        assert pg_stack.snapshot() == pg_stack.baseline
        deadline = time.monotonic() + 10
        while _pg_dump_processes(pg_stack.engine, pg_stack.db) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _pg_dump_processes(pg_stack.engine, pg_stack.db) == []
    finally:
        subprocess.run(["umount", "-l", str(archive)], check=False, capture_output=True)


# -- role detection on real containers, whatever the image is called -------------------


def test_database_variants_found_by_what_they_are(
    engine: Engine, pg_image: PgImage, lm: Any
) -> None:
    """pgvector/pgvector, bitnami/postgresql and a home-built image named after the proxy
    (tags of the real PostgreSQL image, so each container really is a database), a
    Valkey cache and LiteLLM's image: roles and evidence in the dry run."""
    from tests.docker_engine import IMAGES, TEST_LABEL

    api = engine.client.api
    run_id = uuid.uuid4().hex[:8]
    project = f"lmr{run_id}"
    tags = {
        "pgvector": "pgvector/pgvector:pg16",
        "bitnami": "bitnami/postgresql:16.4.0",
        "home": "registry.acme.internal:5000/platform/litellm-db:2025.11",
        "valkey": "valkey/valkey:8",
        "proxy": "ghcr.io/berriai/litellm:main-stable",
    }
    for key, ref in tags.items():
        src = (
            IMAGES["cache"]
            if key == "valkey"
            else IMAGES["proxy"]
            if key == "proxy"
            else pg_image.ref
        )
        repo, tag = ref.rsplit(":", 1)
        api.tag(src, repo, tag)
    made: list[str] = []

    def create(
        service: str,
        image: str,
        env: dict[str, str],
        mount: str | None,
        cmd: list[str] | None = None,
    ) -> str:
        from docker.types import Mount

        labels = {
            "com.docker.compose.project": project,
            "com.docker.compose.service": service,
            TEST_LABEL: run_id,
        }
        mounts = [Mount(mount, f"{project}_{service}", type="volume")] if mount else []
        c = api.create_container(
            image,
            name=f"{project}-{service}-1",
            command=cmd,
            environment=env,
            labels=labels,
            host_config=api.create_host_config(mounts=mounts, network_mode="none"),
        )
        made.append(c["Id"])
        return f"{project}-{service}-1"

    try:
        pgv = create(
            "vectors",
            tags["pgvector"],
            {"POSTGRES_USER": "llmproxy", "POSTGRES_PASSWORD": "x", "POSTGRES_DB": "litellm"},
            "/var/lib/postgresql/data",
        )
        bit = create(
            "postgresql",
            tags["bitnami"],
            {
                "POSTGRESQL_USERNAME": "llmproxy",
                "POSTGRESQL_PASSWORD": "x",
                "POSTGRESQL_DATABASE": "litellm",
                "PGDATA": "/bitnami/postgresql/data",
            },
            "/bitnami/postgresql",
            ["/opt/bitnami/scripts/postgresql/run.sh"],
        )
        home = create(
            "storage",
            tags["home"],
            {"POSTGRES_USER": "llmproxy", "POSTGRES_PASSWORD": "x"},
            "/srv/pg",
        )
        cache = create("kv", tags["valkey"], {}, "/data", ["valkey-server"])
        proxy = create(
            "gateway",
            tags["proxy"],
            {"LITELLM_MASTER_KEY": "sk-x"},
            None,
            ["litellm", "--port", "4000"],
        )
        r = lm(
            "decommission",
            "--project",
            project,
            "--dry-run",
            "--json",
            "--force",
            "--reason",
            "role test",
        )
        assert r.code == 0, r.stderr
        rows = {c["name"]: c for c in r.json()["containers"]}
        assert {n: rows[n]["role"] for n in rows} == {
            pgv: "database",
            bit: "database",
            home: "database",
            cache: "cache",
            proxy: "proxy",
        }
        assert any("POSTGRESQL_USERNAME" in e for e in rows[bit]["evidence"])
        assert any("mount at /bitnami/postgresql" in e for e in rows[bit]["evidence"])
        assert any("command runs postgres" in e for e in rows[home]["evidence"])
        assert any("valkey-server" in e for e in rows[cache]["evidence"])
        steps = [s["name"] for s in r.json()["steps"]]
        assert sum(1 for s in steps if s.startswith("dump ")) == 3
        assert steps[1].startswith(f"stop {proxy}")  # the proxy stops first
    finally:
        for cid in made:
            api.remove_container(cid, force=True, v=True)
        for ref in tags.values():
            api.remove_image(ref, noprune=True)
