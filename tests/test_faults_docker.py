"""Docker-side fault injection and security checks (issue F), on a dockerd of this module's
own: the daemon is stopped in the middle of a decommission and started again on the same
data root, which the shared session engine of test_decommission.py must never do.

- the Docker daemon stopped mid-decommission: exit 3 or 5; once the daemon is back,
  `restore` from the kept (incomplete) archive brings the recorded pre-state back;
- SIGTERM during a decommission: rolled back to the pre-state, exit 130;
- secrets through decommission (dry run, refusal, full run) and restore with -v/--debug;
- hostile names: Docker refuses them as container names; as compose project, service,
  user and database names (labels and environment accept anything) they stay data.

Without root (or dockerd/busybox) the module skips with the reason; with CI=true it fails.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from layra_migrate.sandbox.docker_stack import find_busybox
from tests.conftest import REPO, CliResult, assert_no_canary, base_env
from tests.docker_engine import (
    CANARY_ENV,
    DB_PASSWORD,
    IMAGES,
    LOOP,
    TEST_LABEL,
    FakeStack,
    build_images,
    destroy_stack,
    make_stack,
    read_file,
    state,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Docker engine required with CI=true: {reason}")
    pytest.skip(f"no Docker engine: {reason}")


SECRETS = [*CANARY_ENV.values(), DB_PASSWORD]


def assert_no_secret(*texts: str, where: str = "") -> None:
    assert_no_canary(*texts)
    for text in texts:
        for s in SECRETS:
            assert s not in text, f"secret {s[:10]}... leaked {where}"


@dataclass
class Daemon:
    """A dockerd that can be stopped and started again on the same data root."""

    root: Path
    extra: list[str]
    proc: subprocess.Popen[bytes] | None = None
    client: Any = None

    @property
    def host(self) -> str:
        return f"unix://{self.root}/docker.sock"

    def start(self, timeout: float = 60) -> str | None:
        import docker

        sock = self.root / "docker.sock"
        cmd = [
            self._dockerd(),
            "--host",
            self.host,
            "--data-root",
            str(self.root / "data"),
            "--exec-root",
            str(self.root / "exec"),
            "--pidfile",
            str(self.root / "docker.pid"),
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            *self.extra,
        ]
        with (self.root / "dockerd.log").open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if sock.exists():
                try:
                    self.client = docker.DockerClient(
                        base_url=self.host, timeout=30, version="auto"
                    )
                    self.client.ping()
                    return None
                except Exception:  # noqa: BLE001 - not ready yet
                    pass
            time.sleep(0.3)
        self.stop()
        return (self.root / "dockerd.log").read_text(errors="replace")[-1000:]

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    @staticmethod
    def _dockerd() -> str:
        return shutil.which("dockerd") or "/usr/sbin/dockerd"


def _smoke(client: Any) -> str | None:
    api = client.api
    try:
        build_images(client)
        c = api.create_container(
            IMAGES["app"], command=["true"], host_config=api.create_host_config(network_mode="none")
        )
        api.start(c["Id"])
        code = api.wait(c["Id"], timeout=30).get("StatusCode")
        api.remove_container(c["Id"], force=True)
        return None if code == 0 else f"test container exited {code}"
    except Exception as exc:  # noqa: BLE001
        return f"cannot run a container: {exc}"


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    if os.environ.get("LAYRA_MIGRATE_TEST_DOCKER_HOST"):
        pytest.skip("stopping and restarting the daemon needs one this module starts itself")
    if os.geteuid() != 0:
        _unavailable("starting dockerd needs root")
    if not shutil.which("dockerd") and not os.path.exists("/usr/sbin/dockerd"):
        _unavailable("dockerd not installed (scripts/test.sh installs docker.io as root)")
    if not find_busybox():
        _unavailable("busybox not installed (scripts/test.sh installs busybox-static as root)")
    failures = []
    for extra in ([], ["--storage-driver=vfs"]):
        d = Daemon(Path(tempfile.mkdtemp(prefix="lmf-", dir="/tmp")), extra)
        problem = d.start() or _smoke(d.client)
        if problem is None:
            break
        failures.append(problem)
        d.stop()
        shutil.rmtree(d.root, ignore_errors=True)
    else:
        _unavailable("; ".join(failures))
        return
    try:
        yield d
    finally:
        if d.proc is None or d.proc.poll() is not None:
            d.start()
        try:
            for c in d.client.api.containers(all=True):
                d.client.api.remove_container(c["Id"], force=True)
        except Exception:  # noqa: BLE001
            pass
        d.stop()
        shutil.rmtree(d.root, ignore_errors=True)


@pytest.fixture
def make(daemon: Daemon, tmp_path: Path) -> Iterator[Callable[..., FakeStack]]:
    made: list[FakeStack] = []

    def _make(**kw: Any) -> FakeStack:
        d = tmp_path / f"stack{len(made)}"
        d.mkdir()
        s = make_stack(daemon.client, d, **kw)
        made.append(s)
        return s

    yield _make
    for s in made:
        if daemon.client is not None:
            destroy_stack(daemon.client, s)


@pytest.fixture
def dcli(cli: Any, daemon: Daemon) -> Callable[..., CliResult]:
    def _run(*args: str, env: dict[str, str] | None = None, **kw: Any) -> CliResult:
        return cli(*args, env={"DOCKER_HOST": daemon.host, **(env or {})}, **kw)

    return _run


PRE = {
    "proxy": ("running", "always"),
    "db": ("running", "unless-stopped"),
    "cache": ("running", "always"),
}


def assert_pre_state(client: Any, s: FakeStack) -> None:
    assert state(client, s.proxy) == PRE["proxy"]
    assert state(client, s.db) == PRE["db"]
    assert state(client, s.cache) == PRE["cache"]
    assert state(client, s.unrelated) == ("running", "always")


def _decommission_until(
    daemon: Daemon, s: FakeStack, arch: Path, mongo_uri: str, db_name: str, marker: str, *extra: str
) -> tuple[subprocess.Popen[str], list[str]]:
    env = base_env(
        {
            "DOCKER_HOST": daemon.host,
            "LAYRA_MIGRATE_MONGO_URI": mongo_uri,
            "LAYRA_MIGRATE_DB": db_name,
            "PYTHONFAULTHANDLER": "1",
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
            *extra,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(marker):
            return proc, seen
    pytest.fail(f"never saw {marker!r}: {''.join(seen)[-3000:]}")


# -- the Docker daemon goes away -----------------------------------------------------------


def test_docker_daemon_stopped_mid_decommission_then_restore_from_the_kept_archive(
    daemon: Daemon,
    make: Callable[..., FakeStack],
    mongo_uri: str,
    db_name: str,
    dcli: Any,
    tmp_path: Path,
) -> None:
    s = make(db_size=3_000_000)  # the volume copy takes a moment: the daemon dies in it
    arch = tmp_path / "arch"
    proc, seen = _decommission_until(daemon, s, arch, mongo_uri, db_name, "-> archive volumes")
    daemon.stop()  # every container of the stack is stopped by now: SIGTERM is quick
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=120)
    err = "".join(seen) + err
    assert proc.returncode in (3, 5), err[-3000:]
    assert time.monotonic() - t0 < 90
    assert "Traceback" not in err
    line = next(ln for ln in err.splitlines() if ln.startswith("error:"))
    assert "Docker" in line and "rolled back" not in line.replace(
        "nothing could be rolled back", ""
    )
    assert f"layra-migrate restore {arch}" in line  # the way back, once Docker answers
    assert_no_secret(out, err)
    assert (arch / "manifest.json").is_file() and (arch / "INCOMPLETE").exists()

    assert daemon.start() is None
    client = daemon.client
    # The daemon's own restart rules ran (restart: always came back up, the stopped
    # unless-stopped database did not): not the pre-state, and not ours to guess.
    r = dcli("restore", str(arch), "--yes", "--json")
    assert r.code == 0, r.stderr
    data = r.json()
    assert any("incomplete" in w for w in data.get("warnings") or []), data
    assert_no_secret(r.stdout, r.stderr)
    assert_pre_state(client, s)
    # and the stack is whole: the database volume still holds its data
    assert read_file(client, s.db, "/var/lib/postgresql/data/base.dat") == s.db_data


# -- SIGTERM -------------------------------------------------------------------------------


def test_sigterm_during_decommission_rolls_back_and_exits_130(
    daemon: Daemon, make: Callable[..., FakeStack], mongo_uri: str, db_name: str, tmp_path: Path
) -> None:
    s = make()
    arch = tmp_path / "arch"
    proc, seen = _decommission_until(daemon, s, arch, mongo_uri, db_name, "-> dump")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    err = "".join(seen) + err
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in err and "rolled back" in err
    assert "Traceback" not in err
    assert_no_secret(out, err)
    assert_pre_state(daemon.client, s)
    assert (arch / "INCOMPLETE").exists()


def test_sigterm_during_restore_exits_130_and_a_rerun_finishes(
    daemon: Daemon,
    make: Callable[..., FakeStack],
    dcli: Any,
    mongo_uri: str,
    db_name: str,
    tmp_path: Path,
) -> None:
    s = make()
    arch = tmp_path / "arch"
    r = dcli(
        "decommission",
        "--project",
        s.project,
        "--yes",
        "--remove",
        "--json",
        "--archive-dir",
        str(arch),
    )
    assert r.code == 0, r.stderr
    env = base_env(
        {
            "DOCKER_HOST": daemon.host,
            "LAYRA_MIGRATE_MONGO_URI": mongo_uri,
            "LAYRA_MIGRATE_DB": db_name,
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "layra_migrate", "restore", str(arch), "--yes"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and state(daemon.client, s.db)[0] == "missing":
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 130), err[-3000:]  # 0: it finished before the signal
    assert "Traceback" not in err
    assert_no_secret(out, err)
    r = dcli("restore", str(arch), "--yes")
    assert r.code == 0, r.stderr
    assert_pre_state(daemon.client, s)


# -- secrets through decommission and restore ----------------------------------------------


def test_no_secret_through_decommission_and_restore_with_verbose_and_debug(
    daemon: Daemon, make: Callable[..., FakeStack], dcli: Any, db: Any, tmp_path: Path
) -> None:
    s = make(backend_points_at_proxy=True)
    both = ("-v", "--debug")
    outputs = []
    # dry run, human and JSON
    for extra in ((), ("--json",)):
        r = dcli("decommission", "--project", s.project, "--dry-run", *both, *extra)
        assert r.code == 0, r.stderr
        outputs.append(r)
    # refusal (exit 4): Layra still references the proxy
    db.model_config.insert_one(
        {
            "username": "u",
            "selected_model": "x",
            "models": [
                {
                    "model_name": "gpt-4o",
                    "model_url": "http://litellm:4000/v1",
                    "api_key": CANARY_ENV["LITELLM_MASTER_KEY"],
                }
            ],
        }
    )
    r = dcli(
        "decommission",
        "--project",
        s.project,
        "--yes",
        "--json",
        *both,
        "--archive-dir",
        str(tmp_path / "refused"),
    )
    assert r.code == 4, r.stderr
    outputs.append(r)
    db.model_config.delete_many({})
    # the full run, and restore
    arch = tmp_path / "arch"
    r = dcli("decommission", "--project", s.project, "--yes", *both, "--archive-dir", str(arch))
    assert r.code == 0, r.stderr
    outputs.append(r)
    r = dcli("restore", str(arch), "--yes", *both)
    assert r.code == 0, r.stderr
    outputs.append(r)
    for r in outputs:
        assert "Traceback" not in r.stderr
        assert_no_secret(r.stdout, r.stderr)
    # The manifest and the sums hold no secret; the files that do (.env, the recorded
    # inspect data with each container's environment, the dump) are 0600 in a 0700 folder.
    assert_no_secret((arch / "manifest.json").read_text(), where="in manifest.json")
    assert_no_secret((arch / "SHA256SUMS").read_text(), where="in SHA256SUMS")
    assert stat.S_IMODE(arch.stat().st_mode) == 0o700
    holders = []
    for p in arch.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            if any(sec.encode() in data for sec in SECRETS):
                holders.append(p.relative_to(arch).as_posix())
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert "compose/workdir/.env" in holders
    records = list(db["layra_migrate_decommission"].find())
    assert records
    assert_no_secret(json.dumps(records, default=str), where="in the decommission records")
    assert_pre_state(daemon.client, s)


# -- hostile names -------------------------------------------------------------------------

HOSTILE = "lm x'; touch /tmp/PWNED_{id} #\" $(touch /tmp/PWNED_{id}) `id`"


def test_docker_refuses_hostile_container_names(daemon: Daemon) -> None:
    import docker

    api = daemon.client.api
    for name in ("a b", "x;touch /tmp/PWNED", "it's", 'q"q', "$(id)"):
        with pytest.raises(docker.errors.APIError) as info:
            api.create_container(
                IMAGES["app"],
                command=["true"],
                name=name,
                host_config=api.create_host_config(network_mode="none"),
            )
        assert info.value.status_code == 400, name


def test_hostile_compose_names_stay_data(daemon: Daemon, dcli: Any, tmp_path: Path) -> None:
    """A stack whose compose project and service names, database user and database name
    hold shell syntax: decommission (with the dump exec inside the database container)
    and restore treat them as data. No sentinel file appears on the host or in a
    container."""
    run_id = uuid.uuid4().hex[:8]
    project = HOSTILE.format(id=run_id)
    api = daemon.client.api
    made = []
    labels = {
        "com.docker.compose.project": project,
        TEST_LABEL: run_id,
        "com.docker.compose.oneoff": "False",
    }
    try:
        for service, role, env in (
            ("litellm; touch /tmp/PWNED_" + run_id, "proxy", {}),
            (
                "db $(touch /tmp/PWNED_" + run_id + ")",
                "database",
                {
                    "POSTGRES_USER": f"u'; touch /tmp/PWNED_{run_id}; '",
                    "POSTGRES_DB": f"$(touch /tmp/PWNED_{run_id})",
                    "PGDATA": "/var/lib/postgresql/data",
                },
            ),
        ):
            c = api.create_container(
                IMAGES[role],
                command=LOOP,
                name=f"hostile-{role}-{run_id}",
                labels={**labels, "com.docker.compose.service": service},
                environment=env,
                host_config=api.create_host_config(
                    network_mode="none", restart_policy={"Name": "always"}
                ),
            )
            made.append(c["Id"])
            api.start(c["Id"])
        db_id = made[1]
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            info = tarfile.TarInfo("base.dat")
            info.size = 4
            tf.addfile(info, io.BytesIO(b"rows"))
        api.put_archive(db_id, "/var/lib/postgresql/data", buf.getvalue())

        r = dcli("decommission", "--project", project, "--dry-run", "--json")
        assert r.code == 0, r.stderr
        assert {c["role"] for c in r.json()["containers"]} >= {"proxy", "database"}
        arch = tmp_path / "arch"
        r = dcli(
            "decommission", "--project", project, "--yes", "--json", "--archive-dir", str(arch)
        )
        assert r.code == 0, r.stderr
        data = r.json()
        assert data["project"] == project
        dump = next(st for st in data["steps"] if st["name"].startswith("dump "))
        assert dump["status"] in ("done", "skipped"), dump
        assert json.loads((arch / "manifest.json").read_text())["project"] == project
        r = dcli("restore", str(arch), "--yes", "--json")
        assert r.code == 0, r.stderr
        for cid in made:
            assert api.inspect_container(cid)["State"]["Status"] == "running"
            listing = api.exec_create(cid, ["ls", "-a", "/tmp", "/"])
            out = api.exec_start(listing["Id"]).decode()
            assert "PWNED" not in out, out
        assert not list(Path("/tmp").glob(f"PWNED_{run_id}*"))
        assert not list(tmp_path.rglob("PWNED*"))
    finally:
        for cid in made:
            try:
                api.remove_container(cid, force=True)
            except Exception:  # noqa: BLE001
                pass
