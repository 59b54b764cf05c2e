"""A fake LiteLLM stack on a real Docker engine, built without any registry.

Used by the sandbox job (``python -m layra_migrate.sandbox``) for a real
``decommission`` and ``restore`` when a Docker engine is reachable, and by the
Docker tests (tests/docker_engine.py), which pass their own labels, image names and
canary secrets.

Images: ``docker import`` of a busybox root filesystem (the host's static busybox
binary, so its architecture must match the engine's), with a fake
``pg_dump``/``pg_dumpall``/``pg_restore`` in the database image and a fake ``pip``
in the proxy image. Nothing is pulled.

Stack (:func:`make_stack`): what ``docker compose up`` would have made for a LiteLLM
deployment, with the real compose labels: a proxy (restart ``always``, a health
check), a Postgres-like database (``unless-stopped``, data in a named volume), a
Redis-like cache, the project network, a project volume no container mounts, an
unlabelled volume the proxy mounts, a host bind mount, and an unrelated container
and volume beside the stack that a decommission must leave alone. The compose
directory (``docker-compose.yml``, ``.env``, ``config.yaml``) is written to disk and
referenced by the labels. Every resource carries ``label=run_id`` so
:func:`destroy_stack` / :func:`teardown` remove exactly what was made.

Secrets in the stack are obviously fake (:data:`SANDBOX_ENV`); tests pass canaries.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

SANDBOX_LABEL = "io.layra-migrate.sandbox"
SANDBOX_PREFIX = "layra-sandbox-"
# Obviously fake values for the stack's .env and container environment.
SANDBOX_ENV = {
    "OPENAI_API_KEY": "sk-sandbox-stack-openai-FAKE",
    "DEEPSEEK_API_KEY": "sk-sandbox-stack-deepseek-FAKE",
    "LITELLM_MASTER_KEY": "sk-sandbox-stack-master-FAKE",
    "LITELLM_SALT_KEY": "sk-sandbox-stack-salt-0000",
}
SANDBOX_DB_PASSWORD = "sandbox-db-password-not-a-secret"

LOOP = ["sh", "-c", "trap 'exit 0' TERM INT; while true; do sleep 1 & wait $!; done"]
APPLETS = (
    "sh",
    "sleep",
    "cat",
    "ls",
    "echo",
    "true",
    "false",
    "rm",
    "head",
    "mkdir",
    "env",
    "printf",
    "grep",
    "test",
    "[",
    "tr",
    "wc",
    "id",
)

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
EXTRAS = {
    "proxy": {"pip": PIP},
    "database": {"pg_dump": PG_DUMP, "pg_dumpall": PG_DUMPALL, "pg_restore": PG_RESTORE},
    "cache": {},
    "app": {},
}


def image_refs(namespace: str) -> dict[str, str]:
    """Role -> image reference. The names carry the roles discovery recognises
    (``litellm``, ``postgres``, ``redis``)."""
    return {
        "proxy": f"{namespace}/litellm:main-stable",
        "database": f"{namespace}/postgres:16",
        "cache": f"{namespace}/redis:7",
        "app": f"{namespace}/app:1",
    }


# -- images --------------------------------------------------------------------------------


def find_busybox() -> str | None:
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.isfile(p):
            return p
    return shutil.which("busybox")


def is_static_elf(path: str) -> bool:
    """True for an ELF executable without a program interpreter (statically linked):
    it runs in a root filesystem that holds nothing else."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if head[:4] != b"\x7fELF":
                return False
            is64 = head[4] == 2
            order: Literal["little", "big"] = "little" if head[5] == 1 else "big"
            if is64:
                phoff = int.from_bytes(head[32:40], order)
                phentsize = int.from_bytes(head[54:56], order)
                phnum = int.from_bytes(head[56:58], order)
            else:
                phoff = int.from_bytes(head[28:32], order)
                phentsize = int.from_bytes(head[42:44], order)
                phnum = int.from_bytes(head[44:46], order)
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
    except OSError:
        return False
    for i in range(phnum):
        if int.from_bytes(table[i * phentsize : i * phentsize + 4], order) == 3:  # PT_INTERP
            return False
    return True


def rootfs(busybox: str, extras: Mapping[str, str]) -> bytes:
    """A tar of a minimal root filesystem: busybox, its applets, and extra scripts in /bin."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for d in (
            "bin",
            "tmp",
            "etc",
            "var",
            "app",
            "data",
            "var/lib",
            "var/lib/postgresql",
            "var/lib/postgresql/data",
        ):
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


def build_images(client: Any, images: Mapping[str, str], busybox: str | None = None) -> None:
    """``docker import`` one image per role (``images``: role -> reference)."""
    busybox = busybox or find_busybox()
    if not busybox:
        raise RuntimeError("busybox (busybox-static) is needed to build the stack's images")
    for role, ref in images.items():
        repo, tag = ref.rsplit(":", 1)
        client.api.import_image_from_data(
            rootfs(busybox, EXTRAS[role]), repository=repo, tag=tag, changes=["ENV PATH=/bin"]
        )


def remove_images(client: Any, images: Mapping[str, str]) -> None:
    """Remove the images (and any container still made from them). Missing ones are fine."""
    import docker

    api = client.api
    for ref in images.values():
        try:
            for c in api.containers(all=True, filters={"ancestor": ref}):
                api.remove_container(c["Id"], force=True)
            api.remove_image(ref, force=True)
        except docker.errors.NotFound:
            pass


# -- the stack -----------------------------------------------------------------------------


def compose_yml(images: Mapping[str, str]) -> str:
    return f"""services:
  litellm:
    image: {images["proxy"]}
    restart: always
    depends_on: [db, redis]
    env_file: .env
  db:
    image: {images["database"]}
    restart: unless-stopped
    volumes: [pgdata:/var/lib/postgresql/data]
  redis:
    image: {images["cache"]}
    restart: always
volumes:
  pgdata: {{}}
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
    label: str = SANDBOX_LABEL
    images: dict[str, str] = field(default_factory=dict)


def put_files(client: Any, cid: str, path: str, files: Mapping[str, bytes]) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            tf.addfile(info, io.BytesIO(data))
    if not client.api.put_archive(cid, path, buf.getvalue()):
        raise RuntimeError(f"could not write {sorted(files)} into {cid[:12]}:{path}")


def make_stack(
    client: Any,
    tmp: Path,
    *,
    images: Mapping[str, str],
    label: str = SANDBOX_LABEL,
    project_prefix: str = SANDBOX_PREFIX,
    run_id: str | None = None,
    env: Mapping[str, str] = SANDBOX_ENV,
    db_password: str = SANDBOX_DB_PASSWORD,
    db_size: int = 20_000,
    compromised: bool = False,
    foreign_on_network: bool = False,
    backend_points_at_proxy: bool = False,
    db_without_pg_dump: bool = False,
    real_db_image: str | None = None,
) -> FakeStack:
    """Create and start the stack as compose project ``<project_prefix><run_id>``.

    ``tmp`` receives the compose directory (``tmp/litellm-compose``) and the proxy's
    bind-mounted folder (``tmp/srv-litellm``). ``env`` and ``db_password`` are the
    provider/master keys and database password written to ``.env`` and the
    containers. ``compromised`` makes the proxy report a compromised litellm
    release; ``foreign_on_network`` attaches the unrelated container to the project
    network; ``backend_points_at_proxy`` adds a ``layra-backend-*`` container whose
    environment names the proxy; ``db_without_pg_dump`` runs the database from an
    image without ``pg_dump``. ``real_db_image`` runs the database from a real
    PostgreSQL image (sandbox/postgres_image.py) with its own entrypoint, an empty data
    volume it initialises, and LiteLLM's compose health check (``pg_isready``); load
    LiteLLM's tables with sandbox/litellm_db.py once it is ready.
    """
    run_id = run_id or uuid.uuid4().hex[:8]
    project = f"{project_prefix}{run_id}"
    workdir = tmp / "litellm-compose"
    workdir.mkdir()
    (workdir / "docker-compose.yml").write_text(compose_yml(images))
    (workdir / ".env").write_text(
        "".join(f"{k}={v}\n" for k, v in env.items()) + f"POSTGRES_PASSWORD={db_password}\n"
    )
    (workdir / "config.yaml").write_text(
        "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: openai/gpt-4o\n"
        "      api_key: os.environ/OPENAI_API_KEY\n  - model_name: gemini-2.5-flash\n"
        "    litellm_params:\n      model: gemini/gemini-2.5-flash\n"
        "      api_key: os.environ/GEMINI_API_KEY\n"
    )
    tl = {label: run_id}
    api = client.api

    def labels(service: str, depends: str = "") -> dict[str, str]:
        out = {
            "com.docker.compose.project": project,
            "com.docker.compose.service": service,
            "com.docker.compose.project.working_dir": str(workdir),
            "com.docker.compose.project.config_files": str(workdir / "docker-compose.yml"),
            "com.docker.compose.config-hash": uuid.uuid4().hex,
            "com.docker.compose.container-number": "1",
            "com.docker.compose.oneoff": "False",
            "com.docker.compose.version": "2.29.7",
            **tl,
        }
        if depends:
            out["com.docker.compose.depends_on"] = depends
        return out

    network = f"{project}_default"
    api.create_network(
        network,
        driver="bridge",
        labels={
            "com.docker.compose.project": project,
            "com.docker.compose.network": "default",
            **tl,
        },
    )
    vols = {}
    for v in ("pgdata", "redisdata"):
        name = f"{project}_{v}"
        api.create_volume(
            name,
            labels={"com.docker.compose.project": project, "com.docker.compose.volume": v, **tl},
        )
        vols[v] = name
    unlabelled = f"litellm_cache_{run_id}"
    api.create_volume(unlabelled, labels=dict(tl))
    # A project volume no container mounts (a service removed from the compose file).
    orphan = f"{project}_prometheus_data"
    api.create_volume(
        orphan,
        labels={
            "com.docker.compose.project": project,
            "com.docker.compose.volume": "prometheus_data",
            **tl,
        },
    )
    filler = api.create_container(
        images["app"],
        command=["true"],
        labels=dict(tl),
        host_config=api.create_host_config(
            binds={orphan: {"bind": "/prometheus", "mode": "rw"}}, network_mode="none"
        ),
    )
    put_files(client, filler["Id"], "/prometheus", {"wal.bin": b"prometheus-orphan-data"})
    api.remove_container(filler["Id"])

    def create(
        name: str,
        role: str,
        service: str,
        policy: str,
        env: dict[str, str],
        binds: dict[str, str],
        depends: str = "",
        health: bool = False,
        image: str | None = None,
    ) -> str:
        from docker.types import Mount

        # Like compose v2: named volumes as HostConfig.Mounts, host paths as Binds.
        hc = api.create_host_config(
            binds={v: {"bind": d, "mode": "rw"} for v, d in binds.items() if v.startswith("/")},
            mounts=[Mount(d, v, type="volume") for v, d in binds.items() if not v.startswith("/")],
            restart_policy={"Name": policy, "MaximumRetryCount": 0},
            network_mode=network,
        )
        kwargs: dict[str, Any] = {}
        if health:
            kwargs["healthcheck"] = {
                "test": ["CMD", "true"],
                "interval": 300_000_000,
                "timeout": 2_000_000_000,
                "retries": 3,
            }
        real = role == "database" and real_db_image is not None
        if real:
            # As LiteLLM's docker-compose.yml has it.
            kwargs["healthcheck"] = {
                "test": ["CMD-SHELL", "pg_isready -d litellm -U llmproxy"],
                "interval": 1_000_000_000,
                "timeout": 5_000_000_000,
                "retries": 10,
            }
            kwargs["stop_signal"] = "SIGINT"  # the official image's STOPSIGNAL
        c = api.create_container(
            image or (real_db_image if real else images[role]),
            command=None if real else LOOP,
            name=name,
            labels=labels(service, depends),
            environment=env,
            host_config=hc,
            networking_config=api.create_networking_config(
                {network: api.create_endpoint_config(aliases=[service])}
            ),
            **kwargs,
        )
        return str(c["Id"])

    db_data = os.urandom(db_size)
    db = f"{project}-db-1"
    db_id = create(
        db,
        "database",
        "db",
        "unless-stopped",
        {
            "POSTGRES_USER": "llmproxy",
            "POSTGRES_DB": "litellm",
            "POSTGRES_PASSWORD": db_password,
            "PGDATA": "/var/lib/postgresql/data",
        },
        {vols["pgdata"]: "/var/lib/postgresql/data"},
        image=images["app"] if db_without_pg_dump else None,
    )
    if real_db_image is None:
        put_files(
            client, db_id, "/var/lib/postgresql/data", {"PG_VERSION": b"16\n", "base.dat": db_data}
        )
    cache = f"{project}-redis-1"
    cache_id = create(cache, "cache", "redis", "always", {}, {vols["redisdata"]: "/data"})
    put_files(client, cache_id, "/data", {"dump.rdb": b"REDIS0011 fake"})
    proxy = f"{project}-litellm-1"
    penv = dict(env)
    penv["DATABASE_URL"] = f"postgresql://llmproxy:{db_password}@db:5432/litellm"
    penv["STORE_MODEL_IN_DB"] = "True"
    if compromised:
        penv["FAKE_LITELLM_VERSION"] = "1.82.8"
        penv["FAKE_LITELLM_PTH"] = "1"
    external = tmp / "srv-litellm"
    external.mkdir()
    (external / "config.yaml").write_text("general_settings: {}\n")
    create(
        proxy,
        "proxy",
        "litellm",
        "always",
        penv,
        {unlabelled: "/app/cache", str(external): "/app/external"},
        depends="db:service_started:false,redis:service_started:false",
        health=True,
    )
    for cid in (db_id, cache_id):
        api.start(cid)
    api.start(proxy)

    unrelated = f"unrelated-{run_id}"
    uvol = f"unrelated-{run_id}-data"
    api.create_volume(uvol, labels=dict(tl))
    uc = api.create_container(
        images["app"],
        command=LOOP,
        name=unrelated,
        labels=dict(tl),
        host_config=api.create_host_config(
            binds={uvol: {"bind": "/data", "mode": "rw"}},
            restart_policy={"Name": "always", "MaximumRetryCount": 0},
            network_mode="none",
        ),
    )
    api.start(uc["Id"])
    if foreign_on_network:
        api.disconnect_container_from_network(uc["Id"], "none")
        api.connect_container_to_network(uc["Id"], network)
    if backend_points_at_proxy:
        b = api.create_container(
            images["app"],
            command=LOOP,
            name=f"layra-backend-{run_id}",
            labels=dict(tl),
            environment={"LLM_BASE_URL": f"http://{proxy}:4000/v1"},
            host_config=api.create_host_config(network_mode="none"),
        )
        api.start(b["Id"])
    return FakeStack(
        project=project,
        workdir=workdir,
        proxy=proxy,
        db=db,
        cache=cache,
        unrelated=unrelated,
        unrelated_volume=uvol,
        network=network,
        volumes=[vols["pgdata"], vols["redisdata"], unlabelled, orphan],
        unlabelled_volume=unlabelled,
        db_data=db_data,
        run_id=run_id,
        label=label,
        images=dict(images),
    )


def destroy(client: Any, project: str, run_id: str, label: str = SANDBOX_LABEL) -> None:
    """Remove every container, network and volume labelled ``label=run_id`` or with the
    compose project's label (what restore recreated too). Best effort; never raises
    for what is already gone."""
    api = client.api
    flt = {"label": f"{label}={run_id}"}
    pflt = {"label": f"com.docker.compose.project={project}"}
    for f in (flt, pflt):
        for c in api.containers(all=True, filters=f):
            api.remove_container(c["Id"], force=True)
    for f in (flt, pflt):
        for n in api.networks(filters=f):
            try:
                api.remove_network(n["Id"])
            except Exception:  # noqa: BLE001 - already gone or still in use
                pass
    for f in (flt, pflt):
        for v in (api.volumes(filters=f) or {}).get("Volumes") or []:
            try:
                api.remove_volume(v["Name"], force=True)
            except Exception:  # noqa: BLE001
                pass


def destroy_stack(client: Any, stack: FakeStack) -> None:
    destroy(client, stack.project, stack.run_id, stack.label)


def teardown(
    client: Any, project: str, run_id: str, images: Mapping[str, str], label: str = SANDBOX_LABEL
) -> list[str]:
    """Destroy the stack and remove its images; return what is still there (empty: clean)."""
    destroy(client, project, run_id, label)
    remove_images(client, images)
    return leftovers(client, project, run_id, images, label)


def leftovers(
    client: Any, project: str, run_id: str, images: Mapping[str, str], label: str = SANDBOX_LABEL
) -> list[str]:
    """Containers, networks, volumes and images of this stack that still exist."""
    api = client.api
    left: list[str] = []
    flts = ({"label": f"{label}={run_id}"}, {"label": f"com.docker.compose.project={project}"})
    for f in flts:
        left += [
            f"container {c['Names'][0].lstrip('/')}" for c in api.containers(all=True, filters=f)
        ]
        left += [f"network {n['Name']}" for n in api.networks(filters=f)]
        left += [f"volume {v['Name']}" for v in (api.volumes(filters=f) or {}).get("Volumes") or []]
    left += [f"network {n['Name']}" for n in api.networks() if n["Name"].startswith(project)]
    left += [
        f"volume {v['Name']}"
        for v in (api.volumes() or {}).get("Volumes") or []
        if v["Name"].startswith(project) or run_id in v["Name"]
    ]
    refs = set(images.values())
    for img in api.images(all=True):
        left += [f"image {t}" for t in img.get("RepoTags") or [] if t in refs]
    return sorted(set(left))


def state(client: Any, name: str) -> tuple[str, str]:
    """(status, restart policy name) of a container, or ("missing", "-")."""
    import docker

    try:
        attrs = client.api.inspect_container(name)
    except docker.errors.NotFound:
        return "missing", "-"
    return (
        attrs["State"]["Status"],
        (attrs["HostConfig"].get("RestartPolicy") or {}).get("Name") or "no",
    )
