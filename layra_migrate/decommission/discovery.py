"""What belongs to the LiteLLM stack: containers, volumes, networks, compose files.

Found by compose labels first, then by the well-known container names when a
stack was started without compose. Volumes come from each container's
``Mounts`` (labelled or not) plus the volumes labelled with the project;
networks from the containers' endpoints and the project label. Nothing here
changes the engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layra_migrate import redact
from layra_migrate.decommission.client import docker_errors
from layra_migrate.decommission.roles import ContainerFacts, detect, detect_from_inspect
from layra_migrate.errors import RefusedError
from layra_migrate.settings import is_secret_name

if TYPE_CHECKING:
    import docker

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
WORKDIR_LABEL = "com.docker.compose.project.working_dir"
CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
DEPENDS_LABEL = "com.docker.compose.depends_on"

DEFAULT_PROJECT = "litellm"
KNOWN_NAMES = ("litellm-proxy", "litellm-postgres", "litellm-redis", "litellm_db")
# Stop order: the proxy first (nothing new reaches the database), the database last.
STOP_ORDER = {"proxy": 0, "other": 1, "cache": 2, "database": 3}
# Start order is the reverse: dependencies first.
START_ORDER = {"database": 0, "cache": 1, "other": 2, "proxy": 3}
# Networks Docker itself owns: never removed, never "the project's".
BUILTIN_NETWORKS = frozenset({"none", "host", "bridge"})


def classify(service: str | None, name: str, image: str) -> str:
    """proxy / database / cache / other from service, name and image alone (the full
    evidence, environment and mounts included, is read by :func:`roles.detect`)."""
    return detect(ContainerFacts(name=name, service=service, image=image)).role


@dataclass
class Mount:
    type: str  # volume | bind | tmpfs
    name: str | None  # volume name
    source: str  # host path for binds
    destination: str
    rw: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "source": self.source,
            "destination": self.destination,
            "rw": self.rw,
        }


@dataclass
class StackContainer:
    id: str
    name: str
    role: str
    service: str | None
    image: str
    image_id: str
    status: str
    restart_policy: dict[str, Any]
    health: str | None
    labels: dict[str, str]
    mounts: list[Mount]
    networks: list[str]
    env_names: list[str]
    depends_on: list[str]
    attrs: dict[str, Any] = field(repr=False)
    role_evidence: list[str] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.status in ("running", "restarting", "paused")

    @property
    def policy_name(self) -> str:
        return str(self.restart_policy.get("Name") or "no")

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in (self.attrs.get("Config") or {}).get("Env") or []:
            k, _, v = str(item).partition("=")
            out[k] = v
        return out

    def pre_state(self) -> dict[str, Any]:
        """The recorded pre-state (no values of environment variables)."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "service": self.service,
            "image": self.image,
            "image_id": self.image_id,
            "status": self.status,
            "running": self.running,
            "restart_policy": dict(self.restart_policy),
            "health": self.health,
            "labels": dict(self.labels),
            "mounts": [m.as_dict() for m in self.mounts],
            "networks": list(self.networks),
            "env_names": list(self.env_names),
            "depends_on": list(self.depends_on),
            "role_evidence": list(self.role_evidence),
        }


@dataclass
class StackVolume:
    name: str
    driver: str
    labels: dict[str, str]
    options: dict[str, str]
    mounted_by: list[tuple[str, str]]  # (container name, destination)
    size: int | None = None
    foreign_users: list[str] = field(default_factory=list)

    @property
    def project_labelled(self) -> bool:
        return PROJECT_LABEL in self.labels

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "driver": self.driver,
            "labels": dict(self.labels),
            "options": dict(self.options),
            "mounted_by": [{"container": c, "destination": d} for c, d in self.mounted_by],
            "size": self.size,
            "foreign_users": list(self.foreign_users),
        }


@dataclass
class StackNetwork:
    id: str
    name: str
    driver: str
    internal: bool
    attachable: bool
    labels: dict[str, str]
    options: dict[str, str]
    project_labelled: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "driver": self.driver,
            "internal": self.internal,
            "attachable": self.attachable,
            "labels": dict(self.labels),
            "options": dict(self.options),
            "project_labelled": self.project_labelled,
        }


@dataclass
class Stack:
    project: str
    containers: list[StackContainer]
    volumes: list[StackVolume]
    networks: list[StackNetwork]
    working_dir: str | None
    config_files: list[str]
    searched: str

    def by_role(self, role: str) -> list[StackContainer]:
        return [c for c in self.containers if c.role == role]

    def stop_order(self) -> list[StackContainer]:
        return sorted(self.containers, key=lambda c: (STOP_ORDER[c.role], c.name))


def _container(attrs: dict[str, Any]) -> StackContainer:
    config = attrs.get("Config") or {}
    labels = dict(config.get("Labels") or {})
    name = str(attrs.get("Name", "")).lstrip("/")
    image = str(config.get("Image") or "")
    service = labels.get(SERVICE_LABEL)
    state = attrs.get("State") or {}
    mounts = [
        Mount(
            type=str(m.get("Type", "")),
            name=m.get("Name"),
            source=str(m.get("Source", "")),
            destination=str(m.get("Destination", "")),
            rw=bool(m.get("RW", True)),
        )
        for m in attrs.get("Mounts") or []
    ]
    nets = list(((attrs.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    env_names = []
    for item in config.get("Env") or []:
        k, _, v = str(item).partition("=")
        env_names.append(k)
        if is_secret_name(k):
            # Never printed, but an exec's stderr or an SDK error could echo it.
            redact.register_secret(v)
    depends = [d.split(":", 1)[0] for d in (labels.get(DEPENDS_LABEL) or "").split(",") if d]
    decision = detect_from_inspect(attrs, service)
    return StackContainer(
        id=str(attrs.get("Id", "")),
        name=name,
        role=decision.role,
        role_evidence=decision.evidence,
        service=service,
        image=image,
        image_id=str(attrs.get("Image", "")),
        status=str(state.get("Status", "unknown")),
        restart_policy=dict((attrs.get("HostConfig") or {}).get("RestartPolicy") or {"Name": "no"}),
        health=((state.get("Health") or {}).get("Status")),
        labels=labels,
        mounts=mounts,
        networks=nets,
        env_names=env_names,
        depends_on=depends,
        attrs=attrs,
    )


def discover(
    client: docker.DockerClient, project: str = DEFAULT_PROJECT, *, with_sizes: bool = False
) -> Stack:
    """Find the stack; exit 4 (RefusedError) with what was searched when nothing is found."""
    searched = (
        f"containers labelled {PROJECT_LABEL}={project}, then "
        f"unlabelled containers named {', '.join(KNOWN_NAMES)}"
    )
    api = client.api
    elsewhere: set[str] = set()
    with docker_errors("listing containers"):
        labelled = api.containers(all=True, filters={"label": f"{PROJECT_LABEL}={project}"})
        ids = [c["Id"] for c in labelled]
        if not ids:
            # A stack started without compose: the well-known names, unlabelled only.
            for name in KNOWN_NAMES:
                for c in api.containers(all=True, filters={"name": f"^/{name}$"}):
                    other = (c.get("Labels") or {}).get(PROJECT_LABEL)
                    if other:
                        elsewhere.add(other)
                    elif c["Id"] not in ids:
                        ids.append(c["Id"])
        containers = [_container(api.inspect_container(i)) for i in ids]
    if not containers:
        hint = "pass --project NAME (the compose project name)"
        if elsewhere:
            hint = (
                f"containers with LiteLLM's usual names belong to compose project(s) "
                f"{', '.join(sorted(elsewhere))}: pass --project {sorted(elsewhere)[0]}"
            )
        raise RefusedError(f"no LiteLLM stack found: searched {searched}", hint=hint)
    containers.sort(key=lambda c: (STOP_ORDER[c.role], c.name))
    names = {c.name for c in containers}

    with docker_errors("listing volumes"):
        mounted: dict[str, list[tuple[str, str]]] = {}
        for c in containers:
            for m in c.mounts:
                if m.type == "volume" and m.name:
                    mounted.setdefault(m.name, []).append((c.name, m.destination))
        labelled_vols = (api.volumes(filters={"label": f"{PROJECT_LABEL}={project}"}) or {}).get(
            "Volumes"
        ) or []
        vol_names = list(mounted) + [v["Name"] for v in labelled_vols if v["Name"] not in mounted]
        sizes: dict[str, int] = {}
        if with_sizes:
            try:
                usage = api.df().get("Volumes") or []
            except Exception:  # noqa: BLE001 - sizes only inform the estimate
                usage = []
            for v in usage:
                size = (v.get("UsageData") or {}).get("Size")
                if isinstance(size, int) and size >= 0:
                    sizes[v["Name"]] = size
        volumes: list[StackVolume] = []
        for vn in vol_names:
            info = api.inspect_volume(vn)
            users = [
                u.get("Names", ["?"])[0].lstrip("/")
                for u in api.containers(all=True, filters={"volume": vn})
            ]
            volumes.append(
                StackVolume(
                    name=vn,
                    driver=str(info.get("Driver", "local")),
                    labels=dict(info.get("Labels") or {}),
                    options=dict(info.get("Options") or {}),
                    mounted_by=mounted.get(vn, []),
                    size=sizes.get(vn),
                    foreign_users=[u for u in users if u not in names],
                )
            )

    with docker_errors("listing networks"):
        net_names: list[str] = []
        for c in containers:
            for n in c.networks:
                if n not in net_names and n not in BUILTIN_NETWORKS:
                    net_names.append(n)
        for n in api.networks(filters={"label": f"{PROJECT_LABEL}={project}"}):
            if n["Name"] not in net_names:
                net_names.append(n["Name"])
        networks: list[StackNetwork] = []
        for nn in net_names:
            info = api.inspect_network(nn)
            labels = dict(info.get("Labels") or {})
            networks.append(
                StackNetwork(
                    id=str(info.get("Id", "")),
                    name=str(info.get("Name", nn)),
                    driver=str(info.get("Driver", "bridge")),
                    internal=bool(info.get("Internal")),
                    attachable=bool(info.get("Attachable")),
                    labels=labels,
                    options=dict(info.get("Options") or {}),
                    project_labelled=labels.get(PROJECT_LABEL) == project,
                )
            )

    working_dir = None
    config_files: list[str] = []
    for c in containers:
        if c.labels.get(WORKDIR_LABEL) and working_dir is None:
            working_dir = c.labels[WORKDIR_LABEL]
        for f in (c.labels.get(CONFIG_FILES_LABEL) or "").split(","):
            f = f.strip()
            if f and f not in config_files:
                config_files.append(f)
    return Stack(
        project=project,
        containers=containers,
        volumes=volumes,
        networks=networks,
        working_dir=working_dir,
        config_files=config_files,
        searched=searched,
    )


def directory_size(path: str | None) -> int:
    if not path or not os.path.isdir(path):
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = Path(root) / f
            if not p.is_symlink():
                try:
                    total += p.stat().st_size
                except OSError:
                    pass
    return total


def find_backends(client: docker.DockerClient) -> list[StackContainer]:
    """Layra's backend containers (by name or compose service), for the proxy-env warning."""
    with docker_errors("listing containers"):
        rows = client.api.containers(all=True)
        out = []
        for r in rows:
            names = [n.lstrip("/") for n in r.get("Names") or []]
            service = (r.get("Labels") or {}).get(SERVICE_LABEL, "")
            if (
                any("layra-backend" in n for n in names)
                or service == "layra-backend"
                or (
                    service == "backend"
                    and "layra" in (r.get("Labels") or {}).get(PROJECT_LABEL, "")
                )
            ):
                out.append(_container(client.api.inspect_container(r["Id"])))
    return out
