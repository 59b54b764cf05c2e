"""`restore`: undo a decommission from its verified archive.

The archive is verified first (every checksum, every tar, no crafted path):
a mismatch is exit 5 with nothing touched. Containers that still exist get
their restart policy back and are started when they were running, database
first, waiting for health where a healthcheck exists. Removed ones are
recreated: networks and volumes first (volume content through ``put_archive``
into a created, never started container), then the containers from their
recorded inspect data. A missing image is exit 4, naming it and the compose
directory for ``docker compose up -d``.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layra_migrate.decommission import archive as arch
from layra_migrate.decommission.client import docker_errors
from layra_migrate.decommission.discovery import START_ORDER
from layra_migrate.decommission.execute import HELPER_LABEL, _policy_str, wait_running
from layra_migrate.decommission.models import RESTORE_SCHEMA, ContainerReport, RunResult
from layra_migrate.errors import RefusedError, VerificationFailed
from layra_migrate.progress import Progress

if TYPE_CHECKING:
    import docker

# Keys of inspect's Config that ``POST /containers/create`` accepts back as they are.
_CONFIG_KEYS = (
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Shell",
    "ArgsEscaped",
)


def load_verified(path: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Verify the archive (exit 5 on any mismatch) and return its manifest."""
    return arch.verify_archive(path, progress)


def _find(api: Any, state: dict[str, Any]) -> dict[str, Any] | None:
    import docker

    for ref in (state.get("id"), state.get("name")):
        if not ref:
            continue
        try:
            attrs: dict[str, Any] = api.inspect_container(ref)
            return attrs
        except docker.errors.NotFound:
            continue
    return None


def restore(client: docker.DockerClient, root: Path, manifest: dict[str, Any]) -> RunResult:
    """Bring the stack back to the pre-state recorded in ``manifest``.

    Ctrl-C raises KeyboardInterrupt at once (asyncio.run would defer it to the next
    await); what was already restored stays, and rerunning restore is safe.
    """
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _restore(client, root, manifest)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _restore(client: docker.DockerClient, root: Path, manifest: dict[str, Any]) -> RunResult:
    api = client.api
    root = root.expanduser().absolute()
    project = str(manifest.get("project") or "")
    compose_dir = (manifest.get("compose") or {}).get("working_dir")
    result = RunResult(RESTORE_SCHEMA, project, False, archive=str(root), compose_dir=compose_dir)
    result.archive_verified = True
    result.step("verify archive").done("every checksum matches, every tar read")
    if not manifest.get("complete"):
        result.warnings.append("the archive is marked incomplete (its run was rolled back)")
    states: list[dict[str, Any]] = list(manifest.get("containers") or [])

    with docker_errors("inspecting containers"):
        current = {s["name"]: _find(api, s) for s in states}
    missing = [s for s in states if current[s["name"]] is None]
    for s in states:
        found = current[s["name"]]
        if found is not None:
            s["id"] = found["Id"]
    result.containers = [
        ContainerReport(
            s["name"],
            s.get("role", "other"),
            str((current[s["name"]] or {}).get("State", {}).get("Status", "missing"))
            if current[s["name"]]
            else "missing",
            "",
            _policy_str((current[s["name"]] or {}).get("HostConfig", {}).get("RestartPolicy"))
            if current[s["name"]]
            else "-",
            "",
        )
        for s in states
    ]

    if missing:
        _check_images(api, missing, compose_dir)
    _recreate_networks(client, manifest, result)
    _recreate_volumes(client, root, manifest, result)
    if missing:
        step = result.step("recreate containers", [s["name"] for s in missing])
        made = []
        for s in sorted(
            missing, key=lambda s: (START_ORDER.get(s.get("role", "other"), 2), s["name"])
        ):
            inspect = json.loads((root / s["inspect_member"]).read_text(encoding="utf-8"))
            with docker_errors(f"recreating {s['name']}"):
                new_id = _recreate_container(api, inspect)
            s["id"] = new_id
            made.append(s["name"])
        step.done(", ".join(made))
    else:
        result.step("recreate containers").skipped("every container still exists")

    step = result.step("restore restart policies", [s["name"] for s in states])
    notes = []
    for s in states:
        policy = dict(s.get("restart_policy") or {"Name": "no"})
        with docker_errors(f"updating the restart policy of {s['name']}"):
            attrs = api.inspect_container(s["id"])
            now = (attrs.get("HostConfig") or {}).get("RestartPolicy") or {}
            if _policy_str(now) != _policy_str(policy):
                policy.setdefault("MaximumRetryCount", 0)
                api.update_container(attrs["Id"], restart_policy=policy)
                notes.append(f"{s['name']} {_policy_str(now)} -> {_policy_str(policy)}")
    step.done(", ".join(notes)) if notes else step.skipped("policies already as recorded")

    step = result.step(
        "start containers that were running (database, cache, proxy)",
        [s["name"] for s in states if s.get("running")],
    )
    started: list[str] = []
    failed: list[str] = []
    for s in sorted(states, key=lambda s: (START_ORDER.get(s.get("role", "other"), 2), s["name"])):
        if not s.get("running"):
            continue
        with docker_errors(f"starting {s['name']}"):
            cur = api.inspect_container(s["id"]).get("State") or {}
            was_running = bool(cur.get("Running"))
            if not was_running:
                api.start(s["id"])
            ok, detail = wait_running(client, s["id"], 90.0)
            if was_running and ok:
                detail = "already running"
        (started if ok else failed).append(
            f"{s['name']} {detail}" if ok else f"{s['name']} not {detail}"
        )
    if failed:
        step.failed("; ".join(started + failed))
    elif started:
        step.done(", ".join(started))
    else:
        step.skipped("no container was running before the decommission")

    step = result.step("compare with the recorded pre-state")
    mismatches = []
    by_name = {r.name: r for r in result.containers}
    for s in states:
        attrs = api.inspect_container(s["id"])
        status = str((attrs.get("State") or {}).get("Status"))
        now_policy = _policy_str((attrs.get("HostConfig") or {}).get("RestartPolicy"))
        by_name[s["name"]].state_after = status
        by_name[s["name"]].restart_policy_after = now_policy
        want_running = bool(s.get("running"))
        if want_running != (status == "running"):
            mismatches.append(f"{s['name']} is {status}, was {s.get('status')}")
        if now_policy != _policy_str(s.get("restart_policy")):
            mismatches.append(
                f"{s['name']} restart policy {now_policy}, was "
                f"{_policy_str(s.get('restart_policy'))}"
            )
    if mismatches:
        step.failed("; ".join(mismatches))
        result.error = "the stack is not back to its recorded pre-state: " + "; ".join(mismatches)
        result.exit_code = VerificationFailed.exit_code
    else:
        step.done(f"{len(states)} containers match their recorded state and restart policy")
    return result


def _check_images(api: Any, missing: list[dict[str, Any]], compose_dir: str | None) -> None:
    import docker

    for s in missing:
        found = False
        for ref in (s.get("image_id"), s.get("image")):
            if not ref:
                continue
            try:
                api.inspect_image(ref)
                found = True
                break
            except docker.errors.ImageNotFound:
                continue
            except docker.errors.NotFound:
                continue
        if not found:
            where = (
                f"; recreate the stack with `docker compose up -d` in {compose_dir} "
                "(a copy is in the archive under compose/workdir/)"
                if compose_dir
                else ""
            )
            raise RefusedError(
                f"image {s.get('image')} ({str(s.get('image_id'))[:19]}) of "
                f"{s['name']} is not present on this engine{where}",
                hint="pull or load the image, then rerun restore",
            )


def _recreate_networks(
    client: docker.DockerClient, manifest: dict[str, Any], result: RunResult
) -> None:
    import docker

    api = client.api
    step = result.step("recreate networks", [n["name"] for n in manifest.get("networks") or []])
    made = []
    for n in manifest.get("networks") or []:
        try:
            api.inspect_network(n["name"])
            continue
        except docker.errors.NotFound:
            pass
        with docker_errors(f"creating network {n['name']}"):
            api.create_network(
                n["name"],
                driver=n.get("driver") or "bridge",
                options=n.get("options") or None,
                internal=bool(n.get("internal")),
                labels=n.get("labels") or None,
                attachable=bool(n.get("attachable")) or None,
            )
        made.append(n["name"])
    step.done(", ".join(made)) if made else step.skipped("every network exists")


def _recreate_volumes(
    client: docker.DockerClient, root: Path, manifest: dict[str, Any], result: RunResult
) -> None:
    import docker

    api = client.api
    vols = manifest.get("volumes") or []
    step = result.step("recreate volumes from the archive", [v["name"] for v in vols])
    image: str | None = None
    made = []
    for v in vols:
        try:
            api.inspect_volume(v["name"])
            continue  # still there: its data was never removed, leave it as it is
        except docker.errors.NotFound:
            pass
        with docker_errors(f"restoring volume {v['name']}"):
            api.create_volume(
                v["name"],
                driver=v.get("driver") or "local",
                driver_opts=v.get("options") or None,
                labels=v.get("labels") or None,
            )
            member = v.get("member")
            if member:
                image = image or _helper_image(api, manifest)
                dest = str(v.get("archived_from") or "/volume").rstrip("/") or "/volume"
                parent = dest.rsplit("/", 1)[0] or "/"
                helper = api.create_container(
                    image,
                    command=["true"],
                    labels={HELPER_LABEL: "1"},
                    host_config=api.create_host_config(
                        binds={v["name"]: {"bind": dest, "mode": "rw"}}, network_mode="none"
                    ),
                )
                try:
                    with (root / member).open("rb") as fh:
                        if not api.put_archive(helper["Id"], parent, fh):
                            raise VerificationFailed(f"put_archive into {v['name']} failed")
                finally:
                    api.remove_container(helper["Id"], force=True)
        made.append(v["name"] + (" (content restored)" if member else " (empty)"))
    step.done(", ".join(made)) if made else step.skipped("every volume exists")


def _helper_image(api: Any, manifest: dict[str, Any]) -> str:
    """Any image of the stack still present: the helper container is never started."""
    import docker

    for c in manifest.get("containers") or []:
        for ref in (c.get("image_id"), c.get("image")):
            if not ref:
                continue
            try:
                api.inspect_image(ref)
                return str(ref)
            except docker.errors.NotFound:
                continue
    raise RefusedError(
        "no image of the stack is present to write the volumes back",
        hint="pull or load one of the images recorded in manifest.json",
    )


def _image_for(api: Any, tag: str | None, image_id: str | None) -> str | None:
    """The reference to create the container from: the recorded image id when it is
    present and the tag is gone or moved since (the id is exact), else the tag
    (_check_images made sure one of the two exists)."""
    import docker

    def resolve(ref: str | None) -> str | None:
        if not ref:
            return None
        try:
            return str(api.inspect_image(ref).get("Id"))
        except docker.errors.NotFound:
            return None

    if not (image_id and resolve(image_id) == image_id):
        return tag or image_id
    current = resolve(tag)
    if current == image_id:
        return tag
    if tag and current is None and "@" not in tag:
        # The tag is gone but the exact image is here: give it its name back, so the
        # container comes back as it was (Config.Image names the tag, not an id).
        repo, sep, name = tag.rpartition(":")
        if not sep or "/" in name:  # no tag part ("host:5000/repo" has a port, not a tag)
            repo, name = tag, "latest"
        api.tag(image_id, repo, name)
        return tag
    return image_id


def _recreate_container(api: Any, inspect: dict[str, Any]) -> str:
    cfg = inspect.get("Config") or {}
    body: dict[str, Any] = {k: cfg[k] for k in _CONFIG_KEYS if k in cfg}
    body["Image"] = _image_for(api, cfg.get("Image"), inspect.get("Image"))
    host = dict(inspect.get("HostConfig") or {})
    body["HostConfig"] = host
    mode = str(host.get("NetworkMode") or "default")
    networks: dict[str, Any] = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
    short_id = str(inspect.get("Id", ""))[:12]

    def endpoint(ep: dict[str, Any]) -> dict[str, Any]:
        aliases = [a for a in ep.get("Aliases") or [] if a != short_id]
        out: dict[str, Any] = {"Aliases": aliases or None}
        if ep.get("IPAMConfig"):
            out["IPAMConfig"] = ep["IPAMConfig"]
        return out

    if mode in networks:
        body["NetworkingConfig"] = {"EndpointsConfig": {mode: endpoint(networks[mode])}}
    name = str(inspect.get("Name", "")).lstrip("/")
    created = api.create_container_from_config(body, name=name)
    cid = str(created["Id"])
    for net, ep in networks.items():
        if net == mode or mode in ("none", "host") or mode.startswith("container:"):
            continue
        e = endpoint(ep)
        api.connect_container_to_network(cid, net, aliases=e.get("Aliases"))
    return cid
