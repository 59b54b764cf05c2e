"""`decommission` and `restore` against a real Docker engine and a fake LiteLLM stack.

The engine is a real ``dockerd`` started for the session (the ``engine`` fixture in
tests/conftest.py, from tests/docker_engine.py); the stack carries real compose
labels, restart policies, named volumes with data, a project network, and an
unrelated container and volume beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from layra_migrate.sandbox import docker_stack as ds
from tests.conftest import CliResult, assert_no_canary, run_cli
from tests.docker_engine import (
    CANARY_ENV,
    DB_PASSWORD,
    IMAGES,
    Engine,
    FakeStack,
    destroy_stack,
    make_stack,
    read_file,
    state,
    volume_exists,
)

pytestmark = pytest.mark.docker

SECRETS = [*CANARY_ENV.values(), DB_PASSWORD]


def assert_no_secret(*texts: str) -> None:
    assert_no_canary(*texts)
    for text in texts:
        for s in SECRETS:
            assert s not in text, f"secret {s[:10]}... leaked"


@pytest.fixture
def make(engine: Engine, tmp_path: Path) -> Iterator[Callable[..., FakeStack]]:
    made: list[FakeStack] = []

    def _make(**kw: Any) -> FakeStack:
        d = tmp_path / f"stack{len(made)}"
        d.mkdir()
        s = make_stack(engine.client, d, **kw)
        made.append(s)
        return s

    yield _make
    for s in made:
        destroy_stack(engine.client, s)


@pytest.fixture
def dcli(cli: Any, engine: Engine) -> Callable[..., CliResult]:
    def _run(*args: str, env: dict[str, str] | None = None, **kw: Any) -> CliResult:
        return cli(*args, env={"DOCKER_HOST": engine.host, **(env or {})}, **kw)

    return _run


def states(engine: Engine, s: FakeStack) -> dict[str, tuple[str, str]]:
    return {n: state(engine.client, n) for n in (s.proxy, s.db, s.cache, s.unrelated)}


RUNNING = {
    "proxy": ("running", "always"),
    "db": ("running", "unless-stopped"),
    "cache": ("running", "always"),
}


def assert_pre_state(engine: Engine, s: FakeStack) -> None:
    got = states(engine, s)
    assert got[s.proxy] == RUNNING["proxy"]
    assert got[s.db] == RUNNING["db"]
    assert got[s.cache] == RUNNING["cache"]
    assert got[s.unrelated] == ("running", "always")


# -- preflight -------------------------------------------------------------------------------


def test_docker_unreachable_exits_3_quickly(tmp_path: Path) -> None:
    t0 = time.monotonic()
    r = run_cli(
        "decommission",
        "--dry-run",
        env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"},
        cwd=tmp_path,
    )
    assert r.code == 3, r.stderr
    assert "Docker engine" in r.stderr and "unreachable" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # A socket that accepts but never answers: still a bounded wait.
    sock_path = tmp_path / "silent.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock_path))
    srv.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        r = run_cli(
            "restore",
            str(tmp_path),
            "--yes",
            env={"DOCKER_HOST": f"unix://{sock_path}"},
            cwd=tmp_path,
        )
        # restore verifies the archive before contacting Docker: not an archive -> exit 2
        assert r.code == 2, r.stderr
        r = run_cli(
            "decommission",
            "--dry-run",
            "--json",
            env={"DOCKER_HOST": f"unix://{sock_path}"},
            cwd=tmp_path,
        )
        assert r.code == 3, r.stderr
        assert r.json()["exit_code"] == 3
    finally:
        stop.set()
        t.join()
        srv.close()
    assert time.monotonic() - t0 < 30


def test_refuses_while_layra_references_the_proxy(
    engine: Engine, make: Callable[..., FakeStack], seeded_db: Any, dcli: Any, tmp_path: Path
) -> None:
    s = make()
    r = dcli(
        "decommission", "--project", s.project, "--yes", "--archive-dir", str(tmp_path / "arch")
    )
    assert r.code == 4, r.stderr
    assert "still point at the proxy" in r.stderr and "nothing was stopped" in r.stderr
    assert "model_config" in r.stderr
    assert_pre_state(engine, s)
    assert not (tmp_path / "arch").exists()
    # --force without a reason is a usage error, still nothing touched
    r = dcli("decommission", "--project", s.project, "--yes", "--force")
    assert r.code == 2, r.stderr
    assert_pre_state(engine, s)
    r = dcli(
        "decommission",
        "--project",
        s.project,
        "--dry-run",
        "--json",
        "--force",
        "--reason",
        "leftover references are archived chats",
    )
    assert r.code == 0, r.stderr
    lock = r.json()["interlock"]
    assert lock["forced"] and lock["via_proxy"] > 0 and lock["by_location"]["model_config"] > 0
    # MongoDB unreachable: exit 3, unless forced (then recorded as not checked)
    dead = {"LAYRA_MIGRATE_MONGO_URI": "mongodb://127.0.0.1:1/"}
    r = dcli("decommission", "--project", s.project, "--dry-run", "--timeout", "1", env=dead)
    assert r.code == 3, r.stderr
    r = dcli(
        "decommission",
        "--project",
        s.project,
        "--dry-run",
        "--json",
        "--timeout",
        "1",
        "--force",
        "--reason",
        "Layra is gone too",
        env=dead,
    )
    assert r.code == 0, r.stderr
    assert r.json()["interlock"]["checked"] is False
    assert "interlock not checked" in r.stderr
    assert_pre_state(engine, s)


def test_dry_run_touches_nothing_and_warns(
    engine: Engine, make: Callable[..., FakeStack], dcli: Any, db: Any, tmp_path: Path
) -> None:
    s = make(backend_points_at_proxy=True)
    before = engine.client.api.inspect_container(s.proxy)
    r = dcli(
        "decommission",
        "--project",
        s.project,
        "--dry-run",
        "--json",
        "--archive-dir",
        str(tmp_path / "arch"),
    )
    assert r.code == 0, r.stderr
    data = r.json()
    assert data["schema"] == "layra-migrate/decommission/v1"
    assert data["dry_run"] is True
    assert {c["name"]: c["role"] for c in data["containers"]} == {
        s.proxy: "proxy",
        s.db: "database",
        s.cache: "cache",
    }
    assert all(st["status"] == "pending" for st in data["steps"])
    names = [st["name"] for st in data["steps"]]
    stop_idx = {n: i for i, n in enumerate(names)}
    proxy_stop = next(i for n, i in stop_idx.items() if n.startswith(f"stop {s.proxy}"))
    db_stop = next(i for n, i in stop_idx.items() if n.startswith(f"stop {s.db}"))
    dump = next(i for n, i in stop_idx.items() if n.startswith("dump "))
    assert proxy_stop < dump < db_stop
    assert {v["name"] for v in data["volumes"]} == set(s.volumes)
    assert s.unrelated_volume not in {v["name"] for v in data["volumes"]}
    assert [n["name"] for n in data["networks"]] == [s.network]
    assert data["estimated_size"] and data["estimated_size"] > len(s.db_data)
    assert "no verify run of the database targets is recorded" in r.stderr
    assert f"layra-backend-{s.run_id}" in r.stderr and "LLM_BASE_URL" in r.stderr
    assert "OPENAI_API_KEY" in data["security"]["rotate_keys"]
    assert_no_secret(r.stdout, r.stderr)
    assert not (tmp_path / "arch").exists()
    assert_pre_state(engine, s)
    after = engine.client.api.inspect_container(s.proxy)
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
    # A failed verify of the database targets is a warning too (a plan run does not count).
    db["layra_migrate_verify"].insert_many(
        [
            {
                "source": "database",
                "finished_at": "2026-11-27T05:00:00",
                "ok": 1,
                "failed": 1,
                "passed": False,
                "targets": [],
            },
            {
                "source": "plan",
                "finished_at": "2026-11-27T06:00:00",
                "ok": 2,
                "failed": 0,
                "passed": True,
                "targets": [],
            },
        ]
    )
    r = dcli("decommission", "--project", s.project, "--dry-run")
    assert r.code == 0, r.stderr
    assert "did not pass" in r.stderr
    # Without --yes on a non-interactive terminal: exit 2, nothing touched.
    r = dcli("decommission", "--project", s.project, "--archive-dir", str(tmp_path / "arch"))
    assert r.code == 2, r.stderr
    assert "--yes" in r.stderr
    assert_pre_state(engine, s)
    # An unknown project: exit 4 with what was searched.
    r = dcli("decommission", "--project", "nosuchproject", "--dry-run")
    assert r.code == 4
    assert "com.docker.compose.project=nosuchproject" in r.stderr


# -- the full run, the archive, restore from stopped -------------------------------------------


def _finished_at(engine: Engine, name: str) -> str:
    return str(engine.client.api.inspect_container(name)["State"]["FinishedAt"])


def test_full_run_archive_and_restore_from_stopped(
    engine: Engine, make: Callable[..., FakeStack], dcli: Any, db: Any, tmp_path: Path
) -> None:
    s = make()
    arch = tmp_path / "arch"
    r = dcli("decommission", "--project", s.project, "--yes", "--json", "--archive-dir", str(arch))
    assert r.code == 0, r.stderr
    data = r.json()
    assert_no_secret(r.stdout, r.stderr)
    assert data["archive"] == str(arch) and data["archive_verified"] is True
    assert all(st["status"] in ("done", "skipped") for st in data["steps"]), data["steps"]
    by = {c["name"]: c for c in data["containers"]}
    assert by[s.proxy]["state_after"] == "exited"
    assert by[s.proxy]["restart_policy_before"] == "always"
    assert by[s.db]["restart_policy_before"] == "unless-stopped"
    for n in (s.proxy, s.db, s.cache):
        assert state(engine.client, n) == ("exited", "no")
    assert state(engine.client, s.unrelated) == ("running", "always")
    # proxy first, database last
    assert (
        _finished_at(engine, s.proxy) < _finished_at(engine, s.cache) < _finished_at(engine, s.db)
    )

    # Archive: modes, checksums (sha256sum -c), content.
    assert stat.S_IMODE(arch.stat().st_mode) == 0o700
    for p in arch.rglob("*"):
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p
    check = subprocess.run(
        ["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=arch, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert not (arch / "INCOMPLETE").exists()
    manifest_text = (arch / "manifest.json").read_text()
    assert_no_secret(manifest_text)
    manifest = json.loads(manifest_text)
    assert manifest["complete"] and manifest["verified"]
    assert manifest["project"] == s.project
    assert manifest["docker"]["version"]
    members = {m["path"]: m for m in manifest["members"]}
    pg_tar = arch / f"volumes/{s.project}_pgdata.tar"
    with tarfile.open(pg_tar) as tf:
        fh = tf.extractfile("data/base.dat")
        assert fh is not None and fh.read() == s.db_data
    assert (arch / f"database/{s.db}.dump").read_bytes().startswith(b"PGDMP")
    assert f"database/{s.db}.globals.sql" in members
    dump_step = next(st for st in data["steps"] if st["name"].startswith("dump "))
    assert dump_step["status"] == "done" and "2 entries" in dump_step["detail"]
    assert (arch / "compose/workdir/.env").read_text().count("CANARY") >= 3
    assert (arch / "compose/workdir/docker-compose.yml").is_file()
    with tarfile.open(arch / f"binds/{s.proxy}/app_external.tar") as tf:
        assert tf.extractfile("external/config.yaml") is not None
    assert manifest["bind_mounts"][0]["destination"] == "/app/external"
    assert (
        hashlib.sha256((arch / "compose/workdir/.env").read_bytes()).hexdigest()
        == members["compose/workdir/.env"]["sha256"]
    )
    sec = data["security"]
    assert {
        "OPENAI_API_KEY",
        "DEEPSEEK_API_KEY",
        "LITELLM_MASTER_KEY",
        "LITELLM_SALT_KEY",
        "POSTGRES_PASSWORD",
        "GEMINI_API_KEY",
    } <= set(sec["rotate_keys"])
    assert sec["litellm_version"] == "1.74.9" and sec["compromised"] is False
    rec = db["layra_migrate_decommission"].find_one({"project": s.project})
    assert rec and rec["archive"] == str(arch) and rec["exit_code"] == 0
    assert_no_secret(json.dumps(rec, default=str))

    # Tampered archives are refused before anything is touched.
    import shutil

    bad = tmp_path / "tampered"
    shutil.copytree(arch, bad)
    with (bad / f"volumes/{s.project}_pgdata.tar").open("r+b") as fh:
        fh.seek(600)
        b = fh.read(1)
        fh.seek(600)
        fh.write(bytes([b[0] ^ 0xFF]))
    r = dcli("restore", str(bad), "--yes")
    assert r.code == 5, r.stderr
    assert "checksum mismatch" in r.stderr
    crafted = tmp_path / "crafted"
    shutil.copytree(arch, crafted)
    with (crafted / "SHA256SUMS").open("a") as sums:
        sums.write("0" * 64 + "  ../../etc/passwd\n")
    r = dcli("restore", str(crafted), "--yes")
    assert r.code == 5, r.stderr
    assert "not a plain relative path" in r.stderr
    for n in (s.proxy, s.db, s.cache):
        assert state(engine.client, n) == ("exited", "no")

    # Restore from the stopped state (a volume deleted meanwhile comes back too).
    engine.client.api.remove_volume(f"{s.project}_prometheus_data")
    r = dcli("restore", str(arch), "--yes", "--json")
    assert r.code == 0, r.stderr
    out = r.json()
    assert volume_exists(engine.client, f"{s.project}_prometheus_data")
    vstep = next(st for st in out["steps"] if st["name"].startswith("recreate volumes"))
    assert vstep["status"] == "done" and "prometheus_data (content restored)" in vstep["detail"]
    assert out["schema"] == "layra-migrate/restore/v1"
    assert_no_secret(r.stdout, r.stderr)
    assert_pre_state(engine, s)
    rec = db["layra_migrate_decommission"].find_one({"project": s.project, "kind": "restore"})
    assert rec and rec["exit_code"] == 0 and rec["archive"] == str(arch)
    health = engine.client.api.inspect_container(s.proxy)["State"]["Health"]["Status"]
    assert health == "healthy"
    # started in dependency order: database, cache, proxy
    started = {
        n: engine.client.api.inspect_container(n)["State"]["StartedAt"]
        for n in (s.db, s.cache, s.proxy)
    }
    assert started[s.db] < started[s.cache] < started[s.proxy]


# -- removal and restore from removed -------------------------------------------------------


def test_remove_keeps_foreign_resources_and_restore_recreates(
    engine: Engine, make: Callable[..., FakeStack], dcli: Any, tmp_path: Path
) -> None:
    s = make(foreign_on_network=True, compromised=True)
    arch = tmp_path / "arch"
    r = dcli(
        "decommission",
        "--project",
        s.project,
        "--yes",
        "--json",
        "--remove",
        "--remove-volumes",
        "--archive-dir",
        str(arch),
    )
    assert r.code == 0, r.stderr
    data = r.json()
    assert_no_secret(r.stdout, r.stderr)
    for n in (s.proxy, s.db, s.cache):
        assert state(engine.client, n) == ("missing", "-")
    assert state(engine.client, s.unrelated) == ("running", "always")
    steps = {st["name"].split(" (")[0]: st for st in data["steps"]}
    assert "foreign container" in steps["remove networks"]["detail"]
    engine.client.api.inspect_network(s.network)  # kept: a foreign container is attached
    assert not volume_exists(engine.client, f"{s.project}_pgdata")
    assert not volume_exists(engine.client, f"{s.project}_redisdata")
    assert not volume_exists(engine.client, f"{s.project}_prometheus_data")
    assert volume_exists(engine.client, s.unlabelled_volume)  # not the project's: kept
    assert volume_exists(engine.client, s.unrelated_volume)
    assert data["security"]["compromised"] is True
    assert "litellm_init.pth" in data["security"]["detail"]

    r = dcli("restore", str(arch), "--yes", "--json")
    assert r.code == 0, r.stderr
    assert_pre_state(engine, s)
    assert read_file(engine.client, s.db, "/var/lib/postgresql/data/base.dat") == s.db_data
    assert read_file(engine.client, s.cache, "/data/dump.rdb") == b"REDIS0011 fake"
    # the volume no container mounted came back with its content too
    api = engine.client.api
    probe = api.create_container(
        "layra-test/app:1",
        command=["true"],
        host_config=(
            api.create_host_config(
                binds={f"{s.project}_prometheus_data": {"bind": "/p", "mode": "ro"}},
                network_mode="none",
            )
        ),
    )
    try:
        assert read_file(engine.client, probe["Id"], "/p/wal.bin") == b"prometheus-orphan-data"
    finally:
        api.remove_container(probe["Id"])
    assert not api.containers(all=True, filters={"label": "io.layra-migrate.helper"})
    attrs = engine.client.api.inspect_container(s.proxy)
    assert attrs["Config"]["Labels"]["com.docker.compose.project"] == s.project
    assert s.network in attrs["NetworkSettings"]["Networks"]
    assert "litellm" in attrs["NetworkSettings"]["Networks"][s.network]["Aliases"]


def test_forced_remove_keeps_volumes_and_records_the_reason(
    engine: Engine, make: Callable[..., FakeStack], dcli: Any, seeded_db: Any, tmp_path: Path
) -> None:
    # The cache runs from an image of its own (its own id), removed below to make restore
    # meet a missing image: the shared test images may be in use by the session's other
    # stacks (the real PostgreSQL stack), so they cannot be removed here.
    gone = f"layra-test/redis-gone:{uuid.uuid4().hex[:12]}"
    ds.build_images(engine.client, {"cache": gone})
    s = make(images={"cache": gone})
    seeded_db["layra_migrate_verify"].insert_one(
        {
            "source": "database",
            "finished_at": "2026-11-27T05:00:00+00:00",
            "ok": 3,
            "failed": 0,
            "targets": [
                {"status": "ok", "base_url": "https://api.openai.com/v1", "model": "gpt-4o"}
            ],
        }
    )
    reason = "archived chats still name the proxy"
    r = dcli(
        "decommission",
        "--project",
        s.project,
        "--yes",
        "--remove",
        "--force",
        "--reason",
        reason,
        "--archive-dir",
        str(tmp_path / "arch"),
    )
    assert r.code == 0, r.stderr
    assert_no_secret(r.stdout, r.stderr)
    assert "no verify run" not in r.stderr and "last verify run" not in r.stderr
    manifest = json.loads((tmp_path / "arch/manifest.json").read_text())
    assert manifest["reason"] == reason and manifest["forced"] is True
    assert manifest["removed"]["containers"] == [s.proxy, s.cache, s.db]
    rec = seeded_db["layra_migrate_decommission"].find_one({"project": s.project})
    assert rec["reason"] == reason and rec["interlock"]["via_proxy"] > 0
    import docker

    with pytest.raises(docker.errors.NotFound):
        engine.client.api.inspect_network(s.network)
    for v in s.volumes:
        assert volume_exists(engine.client, v)
    assert state(engine.client, s.unrelated) == ("running", "always")
    # restore: volumes still exist (their data untouched), containers recreated
    r = dcli("restore", str(tmp_path / "arch"), "--yes")
    assert r.code == 0, r.stderr
    assert_pre_state(engine, s)
    assert read_file(engine.client, s.db, "/var/lib/postgresql/data/base.dat") == s.db_data
    # restore refuses when an image is gone, naming it and the compose directory
    r = dcli(
        "decommission",
        "--project",
        s.project,
        "--yes",
        "--remove",
        "--force",
        "--reason",
        reason,
        "--archive-dir",
        str(tmp_path / "arch2"),
    )
    assert r.code == 0, r.stderr
    api = engine.client.api
    image_id = api.inspect_image(gone)["Id"]
    # The tag gone but the exact image still present: restore gives the image its tag
    # back and recreates the container as it was.
    api.tag(gone, "layra-test/redis-keep", image_id[7:19])
    api.remove_image(gone)
    r = dcli("restore", str(tmp_path / "arch2"), "--yes")
    assert r.code == 0, r.stderr
    cache = api.inspect_container(s.cache)
    assert cache["Image"] == image_id and cache["Config"]["Image"] == gone
    r = dcli(
        "decommission",
        "--project",
        s.project,
        "--yes",
        "--remove",
        "--force",
        "--reason",
        reason,
        "--archive-dir",
        str(tmp_path / "arch3"),
    )
    assert r.code == 0, r.stderr
    # The image gone altogether: restore refuses (exit 4), naming it and the compose folder.
    api.remove_image(image_id, force=True)
    assert not [i for i in api.images() if i["Id"] == image_id]
    r = dcli("restore", str(tmp_path / "arch3"), "--yes")
    assert r.code == 4, r.stderr
    assert gone in r.stderr and str(s.workdir) in r.stderr
    assert state(engine.client, s.db) == ("missing", "-")


# -- failure half-way ------------------------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"cannot mount a tmpfs for the fault injection: {r.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs for the fault injection: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_failure_half_way_rolls_back(
    engine: Engine, make: Callable[..., FakeStack], dcli: Any, tiny_fs: Path
) -> None:
    s = make(db_size=300_000)  # the volume copy cannot fit in 64 KiB: ENOSPC after the stops
    arch = tiny_fs / "arch"
    r = dcli(
        "decommission",
        "--project",
        s.project,
        "--yes",
        "--json",
        "--remove",
        "--archive-dir",
        str(arch),
    )
    assert r.code == 5, r.stderr
    assert r.stdout.count("\n") == 1, (r.stdout, r.stderr)
    data = r.json()
    assert_no_secret(r.stdout, r.stderr)
    assert data["rolled_back"] is True and data["archive_verified"] is False
    statuses = {st["name"].split(" (")[0]: st["status"] for st in data["steps"]}
    assert statuses[f"stop {s.proxy}"] == "done"
    assert statuses[f"stop {s.db}"] == "done"
    assert statuses["archive volumes"] == "failed"
    assert statuses["remove containers"] == "skipped"
    assert statuses["rollback"] == "done"
    assert "No space left" in r.stderr or "ENOSPC" in r.stderr or "space" in data["error"]
    assert_pre_state(engine, s)
    assert (arch / "INCOMPLETE").exists()
    assert json.loads((arch / "manifest.json").read_text())["complete"] is False


def test_ctrl_c_rolls_back_and_exits_130(
    engine: Engine, make: Callable[..., FakeStack], mongo_uri: str, db_name: str, tmp_path: Path
) -> None:
    import signal
    import sys

    from tests.conftest import REPO, base_env

    s = make()
    arch = tmp_path / "arch"
    env = base_env(
        {
            "DOCKER_HOST": engine.host,
            "LAYRA_MIGRATE_MONGO_URI": mongo_uri,
            "LAYRA_MIGRATE_DB": db_name,
        }
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "layra_migrate",
            "decommission",
            "--project",
            s.project,
            "--yes",
            "--archive-dir",
            str(arch),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("-> dump"):
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    err = "".join(seen) + err
    assert proc.returncode == 130, err
    assert "interrupted" in err and "rolled back" in err
    assert_no_secret(out, err)
    assert_pre_state(engine, s)
    assert (arch / "INCOMPLETE").exists()


def test_stack_without_compose_found_by_known_names(
    engine: Engine, dcli: Any, tmp_path: Path
) -> None:
    from tests.docker_engine import LOOP, TEST_LABEL

    api = engine.client.api
    made = []
    try:
        for name, role in (("litellm-proxy", "proxy"), ("litellm_db", "database")):
            c = api.create_container(
                IMAGES[role],
                command=LOOP,
                name=name,
                labels={TEST_LABEL: "known"},
                host_config=api.create_host_config(network_mode="none"),
            )
            made.append(c["Id"])
            api.start(c["Id"])
        other = api.create_container(
            IMAGES["cache"],
            command=LOOP,
            name="litellm-redis",
            labels={"com.docker.compose.project": "deploy"},
            host_config=api.create_host_config(network_mode="none"),
        )
        made.append(other["Id"])
        r = dcli("decommission", "--dry-run", "--json")
        assert r.code == 0, r.stderr
        roles = {c["name"]: c["role"] for c in r.json()["containers"]}
        assert roles == {"litellm-proxy": "proxy", "litellm_db": "database"}
        for cid in made[:2]:
            api.remove_container(cid, force=True)
        r = dcli("decommission", "--dry-run")
        assert r.code == 4
        assert "--project deploy" in r.stderr
    finally:
        for cid in made:
            try:
                api.remove_container(cid, force=True)
            except Exception:  # noqa: BLE001
                pass


def test_database_that_cannot_dump_is_skipped_with_reason(
    engine: Engine, make: Callable[..., FakeStack], dcli: Any, tmp_path: Path
) -> None:
    s = make(db_without_pg_dump=True)
    arch = s.workdir / "litellm-archive"  # inside the compose directory: not copied into itself
    r = dcli("decommission", "--project", s.project, "--yes", "--json", "--archive-dir", str(arch))
    assert r.code == 0, r.stderr
    dump = next(st for st in r.json()["steps"] if st["name"].startswith("dump "))
    assert dump["status"] == "skipped"
    assert "pg_dump not available in the container (exit 12" in dump["detail"]
    assert not (arch / "database").exists() or not any((arch / "database").iterdir())
    with tarfile.open(arch / f"volumes/{s.project}_pgdata.tar") as tf:
        fh = tf.extractfile("data/base.dat")
        assert fh is not None and fh.read() == s.db_data
    assert state(engine.client, s.db) == ("exited", "no")
    copied = [p.relative_to(arch).as_posix() for p in (arch / "compose").rglob("*")]
    assert copied and not any("litellm-archive" in p for p in copied), copied
