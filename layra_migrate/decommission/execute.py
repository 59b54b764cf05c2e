"""The decommission run: plan, ordered execution, verification gate, removal, rollback.

Order (see docs/MIGRATION.md): record the pre-state -> stop the proxy -> dump
the database while it runs -> stop the cache (and other services) -> stop the
database last -> copy every volume out of the stopped containers -> copy the
compose directory -> set restart policies to ``no`` -> verify the archive.
Only a verified archive allows ``--remove``. Any failure (or Ctrl-C) before
verification undoes what was done: restart policies back, the containers that
were running started again (database, cache, proxy), the archive kept and
marked ``INCOMPLETE``.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layra_migrate import __version__, redact
from layra_migrate.decommission import archive as arch
from layra_migrate.decommission.client import docker_errors
from layra_migrate.decommission.discovery import (
    START_ORDER,
    Stack,
    StackContainer,
    directory_size,
)
from layra_migrate.decommission.dump import dump_database
from layra_migrate.decommission.models import (
    DECOMMISSION_SCHEMA,
    MANIFEST_SCHEMA,
    ContainerReport,
    InterlockReport,
    Note,
    RunResult,
    SecurityReport,
    Step,
    StepKind,
    StepStatus,
)
from layra_migrate.decommission.security import key_names_from_config, key_names_from_env_file
from layra_migrate.errors import (
    EXIT_INTERRUPTED,
    EXIT_VERIFY_FAILED,
    LayraMigrateError,
    UnreachableError,
)
from layra_migrate.progress import NullProgress, Progress

if TYPE_CHECKING:
    import docker

HELPER_LABEL = "io.layra-migrate.helper"
NO_POLICY = {"Name": "no", "MaximumRetryCount": 0}


@dataclass
class Options:
    project: str
    archive_dir: Path
    dry_run: bool = False
    remove: bool = False
    remove_volumes: bool = False
    force: bool = False
    reason: str | None = None
    stop_timeouts: dict[str, int] = field(
        default_factory=lambda: {"proxy": 30, "other": 30, "cache": 30, "database": 120}
    )


# Host paths that are plumbing, not data: never archived.
_SYSTEM_PREFIXES = (
    "/var/run/",
    "/run/",
    "/dev/",
    "/proc/",
    "/sys/",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/hosts",
    "/etc/resolv.conf",
)


def _worth_archiving(source: str, working_dir: str | None) -> bool:
    """A bind mount's host path outside the compose directory (already copied) and
    outside system plumbing (sockets, devices, time zone files)."""
    if not source or source in ("/", "/var/run", "/run"):
        return False
    if any(source == p.rstrip("/") or source.startswith(p) for p in _SYSTEM_PREFIXES):
        return False
    if working_dir:
        wd = working_dir.rstrip("/")
        if source == wd or source.startswith(wd + "/"):
            return False
    return True


def _policy_str(policy: dict[str, Any] | None) -> str:
    if not policy:
        return "no"
    name = str(policy.get("Name") or "no")
    if name == "on-failure" and policy.get("MaximumRetryCount"):
        return f"on-failure:{policy['MaximumRetryCount']}"
    return name


def plan_steps(stack: Stack, opts: Options, result: RunResult) -> None:
    """The ordered steps and the resources each touches (all ``pending``)."""
    order = stack.stop_order()
    result.step("record pre-state", [c.name for c in stack.containers], kind=StepKind.RECORD)
    for c in (c for c in order if c.role == "proxy"):
        result.step(
            f"stop {c.name} (proxy, timeout {opts.stop_timeouts['proxy']}s)",
            [c.name],
            kind=StepKind.STOP,
            target=c.name,
        )
    for db in stack.by_role("database"):
        result.step(
            f"dump {db.name} (pg_dump -Fc, pg_dumpall --globals-only, pg_restore --list)",
            [db.name],
            kind=StepKind.DUMP,
            target=db.name,
        )
    for c in (c for c in order if c.role in ("other", "cache")):
        result.step(
            f"stop {c.name} ({c.role}, timeout {opts.stop_timeouts[c.role]}s)",
            [c.name],
            kind=StepKind.STOP,
            target=c.name,
        )
    for c in (c for c in order if c.role == "database"):
        result.step(
            f"stop {c.name} (database, timeout {opts.stop_timeouts['database']}s)",
            [c.name],
            kind=StepKind.STOP,
            target=c.name,
        )
    binds = [
        m.source
        for c in stack.containers
        for m in c.mounts
        if m.type == "bind" and _worth_archiving(m.source, stack.working_dir)
    ]
    result.step(
        "archive volumes (get_archive from the stopped containers)",
        [v.name for v in stack.volumes] + [f"bind {b}" for b in binds],
        kind=StepKind.ARCHIVE_VOLUMES,
    )
    result.step(
        "archive compose directory and config files (including .env)",
        [p for p in [stack.working_dir, *stack.config_files] if p],
        kind=StepKind.ARCHIVE_COMPOSE,
    )
    result.step(
        "set restart policies to no", [c.name for c in stack.containers], kind=StepKind.POLICIES
    )
    result.step(
        "verify archive (re-hash every member, read every tar)",
        [str(opts.archive_dir)],
        kind=StepKind.VERIFY,
    )
    if opts.remove:
        result.step(
            "remove containers", [c.name for c in stack.containers], kind=StepKind.REMOVE_CONTAINERS
        )
        result.step(
            "remove networks (project-labelled, no foreign container attached)",
            [n.name for n in stack.networks],
            kind=StepKind.REMOVE_NETWORKS,
        )
        if opts.remove_volumes:
            result.step(
                "remove volumes (project-labelled, not used elsewhere)",
                [v.name for v in stack.volumes],
                kind=StepKind.REMOVE_VOLUMES,
            )


def estimate_size(stack: Stack) -> int | None:
    total = directory_size(stack.working_dir)
    for v in stack.volumes:
        if v.size is None:
            return None
        total += v.size
    return total


def new_result(stack: Stack, opts: Options) -> RunResult:
    result = RunResult(
        DECOMMISSION_SCHEMA, stack.project, opts.dry_run, archive=str(opts.archive_dir)
    )
    result.containers = [
        ContainerReport(
            c.name,
            c.role,
            c.status,
            c.status,
            _policy_str(c.restart_policy),
            _policy_str(c.restart_policy),
            list(c.role_evidence),
        )
        for c in stack.containers
    ]
    result.volumes = [v.as_dict() for v in stack.volumes]
    result.networks = [n.as_dict() for n in stack.networks]
    result.estimated_size = estimate_size(stack)
    plan_steps(stack, opts, result)
    return result


class _Run:
    """One execution: what changed so far, for the rollback."""

    def __init__(
        self,
        client: docker.DockerClient,
        stack: Stack,
        opts: Options,
        result: RunResult,
        security: SecurityReport | None,
        interlock: InterlockReport | None,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.client = client
        self.api = client.api
        self.stack = stack
        self.opts = opts
        self.result = result
        self.security = security
        self.interlock = interlock
        self.progress = progress or (lambda _s: None)
        self.stopped: list[StackContainer] = []
        self.policies_changed: list[StackContainer] = []
        self.helpers: list[str] = []
        self.writer: arch.ArchiveWriter | None = None
        self.meter: Progress = NullProgress()
        self.started_at = datetime.now(UTC)
        self.volume_members: dict[str, dict[str, Any]] = {}
        self.dumps: list[dict[str, Any]] = []
        self.compose: dict[str, Any] = {
            "working_dir": stack.working_dir,
            "config_files": list(stack.config_files),
            "files": [],
        }
        self.removed: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}
        self.binds: list[dict[str, Any]] = []
        self.current: Step | None = None

    def begin(self, kind: StepKind, target: str | None = None) -> Step:
        """The planned step of this kind (and target), now running."""
        step = self.current = self.result.find(kind, target)
        self.progress(step.name)
        return step

    # -- the manifest -----------------------------------------------------------------
    def manifest(self, *, complete: bool, verified: bool) -> dict[str, Any]:
        try:
            version = self.api.version()
            docker_info = {
                "version": version.get("Version"),
                "api_version": version.get("ApiVersion"),
            }
        except Exception:  # noqa: BLE001 - informative only
            docker_info = {"version": None, "api_version": None}
        containers = []
        for c in self.stack.containers:
            state = c.pre_state()
            state["inspect_member"] = f"containers/{c.name}.inspect.json"
            containers.append(state)
        volumes = []
        for v in self.stack.volumes:
            d = v.as_dict()
            d.update(self.volume_members.get(v.name, {"member": None}))
            volumes.append(d)
        return {
            "schema": MANIFEST_SCHEMA,
            "tool": "layra-migrate",
            "tool_version": __version__,
            "started_at": self.started_at.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "host": socket.gethostname(),
            "docker": docker_info,
            "project": self.stack.project,
            "complete": complete,
            "verified": verified,
            "forced": self.opts.force,
            "reason": self.opts.reason,
            "interlock": self.interlock.as_dict() if self.interlock else None,
            "containers": containers,
            "volumes": volumes,
            "networks": [n.as_dict() for n in self.stack.networks],
            "compose": self.compose,
            "dumps": self.dumps,
            "bind_mounts": self.binds,
            "security": self.security.as_dict() if self.security else None,
            "steps": [s.as_dict() for s in self.result.steps],
            "removed": self.removed,
            "note": "members under containers/ and compose/ hold secrets (environment, .env)",
        }

    # -- steps ---------------------------------------------------------------------------
    def stop(self, c: StackContainer) -> None:
        step = self.begin(StepKind.STOP, c.name)
        if not c.running:
            step.skipped(f"was {c.status}")
            return
        timeout = self.opts.stop_timeouts[c.role]
        # Recorded before the call: a Ctrl-C during it must still restart the container.
        self.stopped.append(c)
        with docker_errors(f"stopping {c.name}"):
            self.api.stop(c.id, timeout=timeout)
            state = self.api.inspect_container(c.id).get("State") or {}
        if state.get("Running"):
            raise LayraMigrateError(f"{c.name} is still running after stop")
        step.done(f"stopped (exit code {state.get('ExitCode')})")

    def dump(self, db: StackContainer) -> None:
        step = self.begin(StepKind.DUMP, db.name)
        assert self.writer is not None
        if not db.running:
            step.skipped("database was not running; the volume copy is the only copy")
            self.dumps.append(
                {"container": db.name, "status": "skipped", "detail": step.detail, "members": []}
            )
            return
        outcome = dump_database(self.client, db, self.writer)
        self.dumps.append({"container": db.name, **outcome.as_dict()})
        if outcome.status == "done":
            step.done(outcome.detail)
        else:
            step.skipped(outcome.detail)
            self.result.warnings.append(
                f"no logical dump of {db.name}: the archive keeps the physical copy of its "
                "volume only (it restores with the same PostgreSQL major version)"
            )

    def archive_volumes(self) -> None:
        step = self.begin(StepKind.ARCHIVE_VOLUMES)
        assert self.writer is not None
        names = {c.name: c for c in self.stack.containers}
        done = []
        for v in self.stack.volumes:
            with docker_errors(f"archiving volume {v.name}"):
                if v.mounted_by:
                    cname, dest = v.mounted_by[0]
                    cid = names[cname].id
                else:
                    dest = "/volume"
                    cid = self._helper(v.name, dest)
                member = self._copy_out(cid, dest, f"volumes/{v.name}.tar")
            self.volume_members[v.name] = {
                "member": member.path,
                "archived_from": dest,
                "tar_root": os.path.basename(dest.rstrip("/")) or "/",
            }
            done.append(f"{v.name} ({arch.human_size(member.size)})")
        self._drop_helpers()
        for c in self.stack.containers:
            for m in c.mounts:
                if m.type != "bind" or not _worth_archiving(m.source, self.stack.working_dir):
                    continue
                safe = m.destination.strip("/").replace("/", "_") or "root"
                with docker_errors(f"archiving bind mount {m.destination} of {c.name}"):
                    member = self._copy_out(c.id, m.destination, f"binds/{c.name}/{safe}.tar")
                self.binds.append(
                    {
                        "container": c.name,
                        "source": m.source,
                        "destination": m.destination,
                        "member": member.path,
                    }
                )
                done.append(f"bind {m.source} ({arch.human_size(member.size)})")
        step.done(", ".join(done)) if done else step.skipped("the stack mounts no named volume")

    def _copy_out(self, cid: str, path: str, rel: str) -> arch.Member:
        """``get_archive`` with a response we can close: the daemon holds the container's
        lock while it streams, so an abandoned stream would block the rollback's start."""
        assert self.writer is not None
        api = self.api
        res = api._get(api._url("/containers/{0}/archive", cid), params={"path": path}, stream=True)
        try:
            api._raise_for_status(res)
            return self.writer.write_stream(rel, res.iter_content(chunk_size=1 << 20), "volume")
        finally:
            res.close()

    def _helper(self, volume: str, dest: str) -> str:
        """A created, never started container mounting a volume no stack container mounts."""
        image = self.stack.containers[0].image_id
        helper = self.api.create_container(
            image,
            command=["true"],
            labels={HELPER_LABEL: "1"},
            host_config=self.api.create_host_config(
                binds={volume: {"bind": dest, "mode": "ro"}}, network_mode="none"
            ),
        )
        self.helpers.append(helper["Id"])
        return str(helper["Id"])

    def _drop_helpers(self) -> None:
        for hid in self.helpers:
            try:
                self.api.remove_container(hid, force=True)
            except Exception:  # noqa: BLE001 - best effort
                pass
        self.helpers.clear()

    def archive_compose(self) -> None:
        step = self.begin(StepKind.ARCHIVE_COMPOSE)
        assert self.writer is not None
        wd = self.stack.working_dir
        notes: list[str] = []
        files: list[str] = []
        if wd and os.path.isdir(wd):
            root = Path(wd)
            own = self.writer.root.resolve()
            for dirpath, dirnames, filenames in os.walk(root):
                # The archive may live inside the compose directory (run from there):
                # never copy it into itself.
                dirnames[:] = sorted(d for d in dirnames if (Path(dirpath) / d).resolve() != own)
                for fn in sorted(filenames):
                    src = Path(dirpath) / fn
                    rel = src.relative_to(root).as_posix()
                    if src.is_symlink() or not src.is_file():
                        notes.append(f"{rel} skipped (symlink or special file)")
                        continue
                    self.writer.copy_file(f"compose/workdir/{rel}", src, "compose")
                    files.append(f"compose/workdir/{rel}")
                for d in list(dirnames):
                    if (Path(dirpath) / d).is_symlink():
                        notes.append(f"{(Path(dirpath) / d).relative_to(root)} skipped (symlink)")
                        dirnames.remove(d)
            if self.security is not None:
                names = set(self.security.key_names)
                if (root / ".env").is_file():
                    names |= set(key_names_from_env_file(root / ".env"))
                for f in files:
                    if f.endswith((".yaml", ".yml")):
                        names |= set(key_names_from_config(self.writer.root / f))
                self.security.key_names = sorted(names)
        elif wd:
            notes.append(f"working directory {wd} not found on this host")
        for cf in self.stack.config_files:
            p = Path(cf)
            if wd and p.is_absolute() and Path(wd) in p.parents and p.is_file():
                continue  # already inside the working directory copy
            if p.is_file() and not p.is_symlink():
                rel = "compose/external/" + p.as_posix().lstrip("/")
                self.writer.copy_file(rel, p, "compose")
                files.append(rel)
            else:
                notes.append(f"config file {cf} not found on this host")
        self.compose["files"] = files
        self.compose["notes"] = notes
        if files:
            step.done(f"{len(files)} files" + (f"; {'; '.join(notes)}" if notes else ""))
        else:
            step.skipped("; ".join(notes) or "no compose working directory label")

    def neutralise_policies(self) -> None:
        step = self.begin(StepKind.POLICIES)
        changed = []
        for c in self.stack.containers:
            if c.policy_name == "no":
                continue
            self.policies_changed.append(c)
            with docker_errors(f"updating the restart policy of {c.name}"):
                self.api.update_container(c.id, restart_policy=dict(NO_POLICY))
            changed.append(f"{c.name} ({_policy_str(c.restart_policy)} -> no)")
        step.done(", ".join(changed)) if changed else step.skipped("all policies were already no")

    def verify(self) -> None:
        step = self.begin(StepKind.VERIFY)
        assert self.writer is not None
        problems = arch.verify_members(self.writer.root, self.writer.members, self.meter)
        if problems:
            step.failed("; ".join(problems[:3]))
            from layra_migrate.errors import VerificationFailed

            raise VerificationFailed("archive verification failed: " + "; ".join(problems[:3]))
        step.done(f"{len(self.writer.members)} members re-hashed, every tar read")
        self.result.archive_verified = True

    def remove(self) -> None:
        step = self.begin(StepKind.REMOVE_CONTAINERS)
        for c in self.stack.containers:
            with docker_errors(f"removing {c.name}"):
                self.api.remove_container(c.id, v=False)
            self.removed["containers"].append(c.name)
        step.done(", ".join(self.removed["containers"]))

        step = self.begin(StepKind.REMOVE_NETWORKS)
        ours = {c.id for c in self.stack.containers}
        kept = []
        for n in self.stack.networks:
            if not n.project_labelled:
                kept.append(
                    f"{n.name} (not labelled for project {self.stack.project}: "
                    "external or shared, kept)"
                )
                continue
            with docker_errors(f"inspecting network {n.name}"):
                found = self.client.networks.list(ids=[n.id], greedy=True)
                attached = set((found[0].attrs.get("Containers") or {}).keys()) if found else set()
            foreign = attached - ours
            if foreign:
                kept.append(f"{n.name} ({len(foreign)} foreign container(s) attached, kept)")
                continue
            with docker_errors(f"removing network {n.name}"):
                self.api.remove_network(n.id)
            self.removed["networks"].append(n.name)
        _finish_removal(step, self.removed["networks"], kept)

        if not self.opts.remove_volumes:
            return
        step = self.begin(StepKind.REMOVE_VOLUMES)
        kept = []
        for v in self.stack.volumes:
            if v.labels.get("com.docker.compose.project") != self.stack.project:
                kept.append(f"{v.name} (not labelled for project {self.stack.project}, kept)")
                continue
            with docker_errors(f"checking volume {v.name}"):
                users = self.api.containers(all=True, filters={"volume": v.name})
            if users:
                kept.append(f"{v.name} (used by {len(users)} other container(s), kept)")
                continue
            with docker_errors(f"removing volume {v.name}"):
                self.api.remove_volume(v.name)
            self.removed["volumes"].append(v.name)
        _finish_removal(step, self.removed["volumes"], kept)

    # -- the way back ----------------------------------------------------------------------
    def rollback(self) -> Step:
        step = self.result.step("rollback", kind=StepKind.ROLLBACK)
        notes: list[Note] = []
        self._drop_helpers()
        for c in self.policies_changed:
            try:
                self.api.update_container(c.id, restart_policy=dict(c.restart_policy))
                notes.append(Note(f"{c.name} policy {_policy_str(c.restart_policy)}"))
            except Exception as exc:  # noqa: BLE001 - keep undoing the rest
                notes.append(
                    Note(f"{c.name} policy NOT restored ({exc.__class__.__name__})", ok=False)
                )
        states = [c.pre_state() for c in self.stopped]
        notes.extend(start_in_order(self.client, states))
        # A stop cut short by Ctrl-C may still complete in the daemon after our start:
        # look once more and start again what went down meanwhile.
        time.sleep(1.0)
        late = []
        for st in states:
            try:
                if not (self.api.inspect_container(st["id"]).get("State") or {}).get("Running"):
                    late.append(st)
            except Exception:  # noqa: BLE001 - reported by the first pass
                continue
        if late:
            notes.extend(
                Note(f"{n.text} (second attempt)", n.ok) for n in start_in_order(self.client, late)
            )
        self.result.rolled_back = True
        detail = "; ".join(n.text for n in notes)
        if not all(n.ok for n in notes):
            return step.failed(detail)
        return step.done(detail or "nothing to undo")


def start_in_order(
    client: docker.DockerClient, states: list[dict[str, Any]], health_timeout_s: float = 90.0
) -> list[Note]:
    """Start the containers that were running, dependencies first; wait for health."""
    notes: list[Note] = []
    api = client.api
    for state in sorted(
        states, key=lambda s: (START_ORDER.get(s.get("role", "other"), 2), s["name"])
    ):
        if not state.get("running"):
            continue
        try:
            api.start(state["id"])
            ok, detail = wait_running(client, state["id"], health_timeout_s)
            notes.append(
                Note(f"{state['name']} {detail}")
                if ok
                else Note(f"{state['name']} NOT {detail}", ok=False)
            )
        except Exception as exc:  # noqa: BLE001 - keep starting the rest
            notes.append(Note(f"{state['name']} NOT started ({exc.__class__.__name__})", ok=False))
    return notes


def wait_running(client: docker.DockerClient, cid: str, timeout_s: float) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        state = client.api.inspect_container(cid).get("State") or {}
        health = (state.get("Health") or {}).get("Status")
        if state.get("Running") and health in (None, "healthy"):
            return True, "started" + (" (healthy)" if health else "")
        if not state.get("Running") and state.get("Status") in ("exited", "dead"):
            return False, f"running (status {state.get('Status')})"
        if time.monotonic() > deadline:
            return (
                False,
                f"healthy within {timeout_s:g}s (status {state.get('Status')}, health {health})",
            )
        time.sleep(0.3)


class _SigintGuard:
    """Keep Ctrl-C (and SIGTERM, which the CLI turns into Ctrl-C) from interrupting a
    rollback half-way."""

    def __enter__(self) -> None:
        self.old: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, signal.SIG_IGN)

    def __exit__(self, *exc: object) -> None:
        for sig, old in self.old.items():
            signal.signal(sig, old)


def execute(
    client: docker.DockerClient,
    stack: Stack,
    opts: Options,
    result: RunResult,
    *,
    security: SecurityReport | None = None,
    interlock: InterlockReport | None = None,
    progress: Callable[[str], None] | None = None,
    meter: Progress | None = None,
) -> RunResult:
    """Run the planned steps; on failure before verification, roll back.

    ``progress`` hears each step's label as it starts; ``meter`` the archive's bytes
    written (against the estimated size) and the verification's members.

    Never raises for a failure it rolled back: the result carries the exit code
    (5, 3 or 130), the error, every step's status and the archive path.
    Raises :class:`~layra_migrate.errors.ConfigError` before touching anything
    when the archive folder cannot be created.
    """
    # asyncio.run() turns Ctrl-C into a task cancellation that only lands at the next
    # await; this synchronous run must see it at once to roll back.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _execute(
            client, stack, opts, result, security, interlock, progress, meter or NullProgress()
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _execute(
    client: docker.DockerClient,
    stack: Stack,
    opts: Options,
    result: RunResult,
    security: SecurityReport | None,
    interlock: InterlockReport | None,
    progress: Callable[[str], None] | None,
    meter: Progress,
) -> RunResult:
    run = _Run(client, stack, opts, result, security, interlock, progress)
    run.writer = arch.ArchiveWriter.create(opts.archive_dir)
    run.meter = meter
    writer = run.writer
    writer.progress = meter
    meter.start(arch.ARCHIVE_TASK, result.estimated_size)
    result.archive = str(writer.root)
    try:
        step = run.begin(StepKind.RECORD)
        for c in stack.containers:
            writer.write_json(f"containers/{c.name}.inspect.json", c.attrs, "inspect")
        writer.mark_incomplete("run in progress")
        writer.write_manifest(run.manifest(complete=False, verified=False))
        step.done(f"{len(stack.containers)} containers")
        for c in (c for c in stack.stop_order() if c.role == "proxy"):
            run.stop(c)
        for db in stack.by_role("database"):
            run.dump(db)
        for c in (c for c in stack.stop_order() if c.role in ("other", "cache")):
            run.stop(c)
        for c in (c for c in stack.stop_order() if c.role == "database"):
            run.stop(c)
        run.archive_volumes()
        run.archive_compose()
        meter.finish(arch.ARCHIVE_TASK)
        run.neutralise_policies()
        run.verify()
        # Inside the guarded block: an archive without its manifest cannot be restored.
        writer.clear_incomplete()
        writer.write_manifest(run.manifest(complete=True, verified=True))
    except KeyboardInterrupt:
        _fail_current(run, "interrupted")
        with _SigintGuard():
            run.rollback()
            _finish_incomplete(run, "interrupted (Ctrl-C)")
        result.error = "interrupted: the stack was rolled back to its pre-state"
        result.exit_code = EXIT_INTERRUPTED
        _after_states(client, stack, result)
        return result
    except (LayraMigrateError, OSError, Exception) as exc:  # noqa: BLE001
        message = _describe(exc)
        _fail_current(run, message)
        with _SigintGuard():
            if isinstance(exc, UnreachableError):
                result.step("rollback", kind=StepKind.ROLLBACK).failed(
                    "Docker engine unreachable: nothing could be undone"
                )
            else:
                run.rollback()
            _finish_incomplete(run, message)
        if isinstance(exc, UnreachableError):
            # Nothing could be undone: say so, and give the way back.
            result.error = (
                f"{message}; nothing could be rolled back while Docker is "
                f"unreachable: when it answers again, `layra-migrate restore "
                f"{writer.root}` brings back the recorded pre-state (archive "
                f"kept, marked incomplete)"
            )
        else:
            result.error = f"{message}; rolled back, archive kept and marked incomplete"
        result.exit_code = (
            exc.exit_code if isinstance(exc, UnreachableError) else EXIT_VERIFY_FAILED
        )
        _after_states(client, stack, result)
        return result

    if opts.remove:
        try:
            run.remove()
        except (LayraMigrateError, Exception) as exc:  # noqa: BLE001
            message = _describe(exc)
            _fail_current(run, message)
            result.error = (
                f"{message}; the archive is verified: `layra-migrate restore "
                f"{writer.root}` brings the stack back"
            )
            result.exit_code = (
                getattr(exc, "exit_code", EXIT_VERIFY_FAILED)
                if isinstance(exc, UnreachableError)
                else EXIT_VERIFY_FAILED
            )
        writer.write_manifest(run.manifest(complete=True, verified=True))
    _after_states(client, stack, result)
    return result


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LayraMigrateError):
        return redact.scrub(str(exc))
    if isinstance(exc, OSError):
        return f"{exc.__class__.__name__}: {exc.strerror or exc}" + (
            f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        )
    return redact.scrub(f"{exc.__class__.__name__}: {exc}")


def _fail_current(run: _Run, message: str) -> None:
    """The running step failed; the steps not run are skipped. A failure between steps
    (writing the manifest) fails the next step: it could not start."""
    pending = [s for s in run.result.steps if s.status == StepStatus.PENDING]
    failed = run.current if any(s is run.current for s in pending) else next(iter(pending), None)
    for s in pending:
        if s is failed:
            s.failed(message)
        else:
            s.skipped("not run: an earlier step failed")


def _finish_incomplete(run: _Run, why: str) -> None:
    assert run.writer is not None
    run.result.archive_verified = False
    try:
        run.writer.mark_incomplete(why)
        run.writer.write_manifest(run.manifest(complete=False, verified=False))
    except OSError as exc:
        run.result.warnings.append(
            f"could not update the incomplete archive's manifest ({exc.strerror})"
        )


def _after_states(client: docker.DockerClient, stack: Stack, result: RunResult) -> None:
    by_name = {c.name: c for c in stack.containers}
    for report in result.containers:
        c = by_name[report.name]
        try:
            attrs = client.api.inspect_container(c.id)
        except Exception:  # noqa: BLE001 - removed (or engine gone)
            report.state_after = "removed"
            report.restart_policy_after = "-"
            continue
        report.state_after = str((attrs.get("State") or {}).get("Status", "unknown"))
        report.restart_policy_after = _policy_str(
            (attrs.get("HostConfig") or {}).get("RestartPolicy")
        )


def _finish_removal(step: Step, removed: list[str], kept: list[str]) -> None:
    """A removal step is done when it removed something, skipped otherwise; its detail
    names what went and what was kept (and why)."""
    detail = ", ".join(removed) or "none removed"
    if kept:
        detail += "; kept: " + ", ".join(kept)
    if removed:
        step.done(detail)
    else:
        step.skipped(detail)
