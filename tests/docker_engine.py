"""A real Docker engine for the decommission tests, and a fake LiteLLM stack on it.

``dockerd`` is started once per session with its own socket, data root and exec
root (``--bridge=none --iptables=false --ip-masq=false``) and stopped by PID.
Images are built without any registry: ``docker import`` of a busybox root
filesystem, with fake ``pg_dump``/``pg_dumpall``/``pg_restore`` in the database
image and a fake ``pip`` in the proxy image. ``LAYRA_MIGRATE_TEST_DOCKER_HOST``
points the suite at an existing engine instead.

Without root (or without dockerd/busybox) the tests skip with the reason;
with ``CI=true`` they fail instead.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

TEST_LABEL = "io.layra-migrate.test"
LOOP = ["sh", "-c", "trap 'exit 0' TERM INT; while true; do sleep 1 & wait $!; done"]
APPLETS = ("sh", "sleep", "cat", "ls", "echo", "true", "false", "rm", "head", "mkdir", "env",
           "printf", "grep", "test", "[", "tr", "wc", "id")

PG_DUMP = """#!/bin/sh
# fake pg_dump -Fc: a custom-format magic, then the "database" content
printf 'PGDMP'
echo " custom dump of $POSTGRES_DB for $POSTGRES_USER"
echo "table rows: $(wc -c < "$PGDATA"/base.dat)"
exit 0
"""
PG_DUMPALL = """#!/bin/sh
echo "CREATE ROLE $POSTGRES_USER;"
"""
PG_RESTORE = """#!/bin/sh
[ "$1" = "--list" ] || exit 2
head -c 5 "$2" | grep -q PGDMP || { echo "pg_restore: input is not a dump" >&2; exit 1; }
echo ";"
echo "; Archive created by fake pg_dump"
echo "215; 1259 16385 TABLE public LiteLLM_SpendLogs llmproxy"
echo "216; 1259 16390 TABLE public LiteLLM_VerificationToken llmproxy"
"""
PIP = """#!/bin/sh
# fake pip show -f litellm
[ "$1" = "show" ] || exit 1
echo "Name: litellm"
echo "Version: ${FAKE_LITELLM_VERSION:-1.74.9}"
echo "Files:"
echo "  litellm/__init__.py"
[ -n "$FAKE_LITELLM_PTH" ] && echo "  litellm_init.pth"
exit 0
"""

IMAGES = {
    "proxy": "layra-test/litellm:main-stable",
    "database": "layra-test/postgres:16",
    "cache": "layra-test/redis:7",
    "app": "layra-test/app:1",
}


@dataclass
class Engine:
    host: str
    client: Any
    proc: subprocess.Popen[bytes] | None = None
    root: Path | None = None
    notes: list[str] = field(default_factory=list)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Docker engine required with CI=true: {reason}")
    pytest.skip(f"no Docker engine: {reason}")


def _busybox() -> str | None:
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.isfile(p):
            return p
    return shutil.which("busybox")


def _rootfs(busybox: str, extras: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for d in ("bin", "tmp", "etc", "var", "app", "data", "var/lib", "var/lib/postgresql",
                  "var/lib/postgresql/data"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            tf.addfile(info)
        tf.add(busybox, arcname="bin/busybox")
        for a in APPLETS:
            info = tarfile.TarInfo(f"bin/{a}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tf.addfile(info)
        for name, text in extras.items():
            data = text.encode()
            info = tarfile.TarInfo(f"bin/{name}")
            info.size = len(data)
            info.mode = 0o755
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_images(client: Any) -> None:
    busybox = _busybox()
    assert busybox, "busybox-static is needed to build the test images"
    extras = {"proxy": {"pip": PIP}, "database": {"pg_dump": PG_DUMP, "pg_dumpall": PG_DUMPALL,
                                                  "pg_restore": PG_RESTORE},
              "cache": {}, "app": {}}
    for role, ref in IMAGES.items():
        repo, tag = ref.rsplit(":", 1)
        client.api.import_image_from_data(_rootfs(busybox, extras[role]), repository=repo,
                                          tag=tag, changes=["ENV PATH=/bin"])


def start_engine() -> Iterator[Engine]:
    import docker

    external = os.environ.get("LAYRA_MIGRATE_TEST_DOCKER_HOST")
    if external:
        try:
            client = docker.DockerClient(base_url=external, timeout=30, version="auto")
            client.ping()
        except Exception as exc:  # noqa: BLE001
            _unavailable(f"LAYRA_MIGRATE_TEST_DOCKER_HOST={external} unreachable ({exc})")
        build_images(client)
        yield Engine(external, client)
        client.close()
        return

    if os.geteuid() != 0:
        _unavailable("starting dockerd needs root (or set LAYRA_MIGRATE_TEST_DOCKER_HOST)")
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists(
        "/usr/sbin/dockerd") else "")
    if not dockerd:
        _unavailable("dockerd not installed (scripts/test.sh installs docker.io as root)")
    if not _busybox():
        _unavailable("busybox not installed (scripts/test.sh installs busybox-static as root)")
    # Overlay first; vfs when overlay cannot mount here (nested or unusual file systems).
    failures = []
    for extra in ([], ["--storage-driver=vfs"]):
        launched = _launch(docker, dockerd, extra)
        if isinstance(launched, str):
            failures.append(launched)
            continue
        engine = launched
        problem = _smoke(engine)
        if problem is None:
            engine.notes.append("dockerd " + (" ".join(extra) or "(default storage driver)"))
            break
        failures.append(problem)
        _shutdown(engine)
    else:
        _unavailable("; ".join(failures))
        return
    try:
        yield engine
    finally:
        _shutdown(engine)


def _launch(docker: Any, dockerd: str, extra: list[str]) -> Engine | str:
    # Short paths: unix socket paths are limited to 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="lmd-", dir="/tmp"))
    sock = root / "docker.sock"
    cmd = [dockerd, "--host", f"unix://{sock}", "--data-root", str(root / "data"),
           "--exec-root", str(root / "exec"), "--pidfile", str(root / "docker.pid"),
           "--bridge=none", "--iptables=false", "--ip-masq=false", *extra]
    with (root / "dockerd.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    host = f"unix://{sock}"
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and proc.poll() is None:
        if sock.exists():
            try:
                client = docker.DockerClient(base_url=host, timeout=30, version="auto")
                client.ping()
                return Engine(host, client, proc, root)
            except Exception:  # noqa: BLE001 - not ready yet
                pass
        time.sleep(0.3)
    _stop(proc)
    tail = (root / "dockerd.log").read_text(errors="replace")[-1200:]
    shutil.rmtree(root, ignore_errors=True)
    return f"dockerd {' '.join(extra)} did not come up: {tail}"


def _smoke(engine: Engine) -> str | None:
    """Build the images and run one container: namespaces, cgroups and storage work."""
    api = engine.client.api
    try:
        build_images(engine.client)
        c = api.create_container(IMAGES["app"], command=["true"],
                                 host_config=api.create_host_config(network_mode="none"))
        api.start(c["Id"])
        code = api.wait(c["Id"], timeout=30).get("StatusCode")
        api.remove_container(c["Id"], force=True)
        return None if code == 0 else f"test container exited {code}"
    except Exception as exc:  # noqa: BLE001
        return f"cannot run a container: {exc}"


def _shutdown(engine: Engine) -> None:
    client = engine.client
    try:
        for c in client.api.containers(all=True):
            client.api.remove_container(c["Id"], force=True)
    except Exception:  # noqa: BLE001
        pass
    client.close()
    if engine.proc is not None:
        _stop(engine.proc)
    if engine.root is not None:
        shutil.rmtree(engine.root, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# -- the fake LiteLLM stack ----------------------------------------------------------------

CANARY_ENV = {
    "OPENAI_API_KEY": "sk-proj-CANARYenvOPENAIkey00000000000",
    "DEEPSEEK_API_KEY": "sk-CANARYenvDEEPSEEKkey000000000000000",
    "LITELLM_MASTER_KEY": "sk-litellm-master-CANARYmasterKEY00000000001",
    "LITELLM_SALT_KEY": "sk-salt-CANARYmasterKEYsalt0000000000",
}
DB_PASSWORD = "CANARYpassDB0000"
COMPOSE_YML = """services:
  litellm:
    image: layra-test/litellm:main-stable
    restart: always
    depends_on: [db, redis]
    env_file: .env
  db:
    image: layra-test/postgres:16
    restart: unless-stopped
    volumes: [pgdata:/var/lib/postgresql/data]
  redis:
    image: layra-test/redis:7
    restart: always
volumes:
  pgdata: {}
"""


@dataclass
class FakeStack:
    project: str
    workdir: Path
    proxy: str
    db: str
    cache: str
    unrelated: str
    unrelated_volume: str
    network: str
    volumes: list[str]
    unlabelled_volume: str
    db_data: bytes
    run_id: str


def _put_files(client: Any, cid: str, path: str, files: dict[str, bytes]) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            tf.addfile(info, io.BytesIO(data))
    assert client.api.put_archive(cid, path, buf.getvalue())


def make_stack(client: Any, tmp: Path, *, db_size: int = 20_000, compromised: bool = False,
               foreign_on_network: bool = False, backend_points_at_proxy: bool = False,
               db_without_pg_dump: bool = False) -> FakeStack:
    run_id = uuid.uuid4().hex[:8]
    project = f"lmt{run_id}"
    workdir = tmp / "litellm-compose"
    workdir.mkdir()
    (workdir / "docker-compose.yml").write_text(COMPOSE_YML)
    (workdir / ".env").write_text("".join(f"{k}={v}\n" for k, v in CANARY_ENV.items())
                                  + f"POSTGRES_PASSWORD={DB_PASSWORD}\n")
    (workdir / "config.yaml").write_text(
        "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: openai/gpt-4o\n"
        "      api_key: os.environ/OPENAI_API_KEY\n  - model_name: gemini-2.5-flash\n"
        "    litellm_params:\n      model: gemini/gemini-2.5-flash\n"
        "      api_key: os.environ/GEMINI_API_KEY\n")
    tl = {TEST_LABEL: run_id}
    api = client.api

    def labels(service: str, depends: str = "") -> dict[str, str]:
        out = {"com.docker.compose.project": project, "com.docker.compose.service": service,
               "com.docker.compose.project.working_dir": str(workdir),
               "com.docker.compose.project.config_files": str(workdir / "docker-compose.yml"),
               "com.docker.compose.config-hash": uuid.uuid4().hex,
               "com.docker.compose.container-number": "1",
               "com.docker.compose.oneoff": "False", "com.docker.compose.version": "2.29.7",
               **tl}
        if depends:
            out["com.docker.compose.depends_on"] = depends
        return out

    network = f"{project}_default"
    api.create_network(network, driver="bridge", labels={
        "com.docker.compose.project": project, "com.docker.compose.network": "default", **tl})
    vols = {}
    for v in ("pgdata", "redisdata"):
        name = f"{project}_{v}"
        api.create_volume(name, labels={"com.docker.compose.project": project,
                                        "com.docker.compose.volume": v, **tl})
        vols[v] = name
    unlabelled = f"litellm_cache_{run_id}"
    api.create_volume(unlabelled, labels=dict(tl))
    # A project volume no container mounts (a service removed from the compose file).
    orphan = f"{project}_prometheus_data"
    api.create_volume(orphan, labels={"com.docker.compose.project": project,
                                      "com.docker.compose.volume": "prometheus_data", **tl})
    filler = api.create_container(IMAGES["app"], command=["true"], labels=dict(tl),
                                  host_config=api.create_host_config(
                                      binds={orphan: {"bind": "/prometheus", "mode": "rw"}},
                                      network_mode="none"))
    _put_files(client, filler["Id"], "/prometheus", {"wal.bin": b"prometheus-orphan-data"})
    api.remove_container(filler["Id"])

    def create(name: str, role: str, service: str, policy: str, env: dict[str, str],
               binds: dict[str, str], depends: str = "", health: bool = False,
               image: str | None = None) -> str:
        from docker.types import Mount

        # Like compose v2: named volumes as HostConfig.Mounts, host paths as Binds.
        hc = api.create_host_config(
            binds={v: {"bind": d, "mode": "rw"} for v, d in binds.items() if v.startswith("/")},
            mounts=[Mount(d, v, type="volume") for v, d in binds.items()
                    if not v.startswith("/")],
            restart_policy={"Name": policy, "MaximumRetryCount": 0}, network_mode=network)
        kwargs: dict[str, Any] = {}
        if health:
            kwargs["healthcheck"] = {"test": ["CMD", "true"], "interval": 300_000_000,
                                     "timeout": 2_000_000_000, "retries": 3}
        c = api.create_container(
            image or IMAGES[role], command=LOOP, name=name, labels=labels(service, depends),
            environment=env, host_config=hc,
            networking_config=api.create_networking_config(
                {network: api.create_endpoint_config(aliases=[service])}), **kwargs)
        return str(c["Id"])

    db_data = os.urandom(db_size)
    db = f"{project}-db-1"
    db_id = create(db, "database", "db", "unless-stopped",
                   {"POSTGRES_USER": "llmproxy", "POSTGRES_DB": "litellm",
                    "POSTGRES_PASSWORD": DB_PASSWORD, "PGDATA": "/var/lib/postgresql/data"},
                   {vols["pgdata"]: "/var/lib/postgresql/data"},
                   image=IMAGES["app"] if db_without_pg_dump else None)
    _put_files(client, db_id, "/var/lib/postgresql/data",
               {"PG_VERSION": b"16\n", "base.dat": db_data})
    cache = f"{project}-redis-1"
    cache_id = create(cache, "cache", "redis", "always", {}, {vols["redisdata"]: "/data"})
    _put_files(client, cache_id, "/data", {"dump.rdb": b"REDIS0011 fake"})
    proxy = f"{project}-litellm-1"
    penv = dict(CANARY_ENV)
    penv["DATABASE_URL"] = f"postgresql://llmproxy:{DB_PASSWORD}@db:5432/litellm"
    penv["STORE_MODEL_IN_DB"] = "True"
    if compromised:
        penv["FAKE_LITELLM_VERSION"] = "1.82.8"
        penv["FAKE_LITELLM_PTH"] = "1"
    external = tmp / "srv-litellm"
    external.mkdir()
    (external / "config.yaml").write_text("general_settings: {}\n")
    create(proxy, "proxy", "litellm", "always", penv,
           {unlabelled: "/app/cache", str(external): "/app/external"},
           depends="db:service_started:false,redis:service_started:false", health=True)
    for cid in (db_id, cache_id):
        api.start(cid)
    api.start(proxy)

    unrelated = f"unrelated-{run_id}"
    uvol = f"unrelated-{run_id}-data"
    api.create_volume(uvol, labels=dict(tl))
    uc = api.create_container(
        IMAGES["app"], command=LOOP, name=unrelated, labels=dict(tl),
        host_config=api.create_host_config(
            binds={uvol: {"bind": "/data", "mode": "rw"}},
            restart_policy={"Name": "always", "MaximumRetryCount": 0}, network_mode="none"))
    api.start(uc["Id"])
    if foreign_on_network:
        api.disconnect_container_from_network(uc["Id"], "none")
        api.connect_container_to_network(uc["Id"], network)
    if backend_points_at_proxy:
        b = api.create_container(
            IMAGES["app"], command=LOOP, name=f"layra-backend-{run_id}", labels=dict(tl),
            environment={"LLM_BASE_URL": f"http://{proxy}:4000/v1"},
            host_config=api.create_host_config(network_mode="none"))
        api.start(b["Id"])
    return FakeStack(project=project, workdir=workdir, proxy=proxy, db=db, cache=cache,
                     unrelated=unrelated, unrelated_volume=uvol, network=network,
                     volumes=[vols["pgdata"], vols["redisdata"], unlabelled, orphan],
                     unlabelled_volume=unlabelled, db_data=db_data, run_id=run_id)


def destroy_stack(client: Any, stack: FakeStack) -> None:
    api = client.api
    flt = {"label": f"{TEST_LABEL}={stack.run_id}"}
    for c in api.containers(all=True, filters=flt):
        api.remove_container(c["Id"], force=True)
    for c in api.containers(all=True, filters={"label": f"com.docker.compose.project="
                                                         f"{stack.project}"}):
        api.remove_container(c["Id"], force=True)
    for n in api.networks(filters=flt):
        try:
            api.remove_network(n["Id"])
        except Exception:  # noqa: BLE001
            pass
    for v in (api.volumes(filters=flt) or {}).get("Volumes") or []:
        try:
            api.remove_volume(v["Name"], force=True)
        except Exception:  # noqa: BLE001
            pass


def state(client: Any, name: str) -> tuple[str, str]:
    """(status, restart policy name) of a container, or ("missing", "-")."""
    import docker

    try:
        attrs = client.api.inspect_container(name)
    except docker.errors.NotFound:
        return "missing", "-"
    return (attrs["State"]["Status"],
            (attrs["HostConfig"].get("RestartPolicy") or {}).get("Name") or "no")


def volume_exists(client: Any, name: str) -> bool:
    import docker

    try:
        client.api.inspect_volume(name)
        return True
    except docker.errors.NotFound:
        return False


def read_file(client: Any, container: str, path: str) -> bytes:
    bits, _ = client.api.get_archive(container, path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tf:
        for m in tf:
            if m.isfile():
                fh = tf.extractfile(m)
                assert fh is not None
                return fh.read()
    raise AssertionError(f"{path} not found in {container}")
