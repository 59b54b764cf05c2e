"""Result objects shared by decommission and restore."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

DECOMMISSION_SCHEMA = "layra-migrate/decommission/v1"
RESTORE_SCHEMA = "layra-migrate/restore/v1"
MANIFEST_SCHEMA = "layra-migrate/decommission-manifest/v1"


class StepStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


class StepKind(StrEnum):
    """What a decommission step does; with its ``target`` (a container name, for the
    per-container steps) it names the step the run executes."""

    RECORD = "record"
    STOP = "stop"
    DUMP = "dump"
    ARCHIVE_VOLUMES = "archive_volumes"
    ARCHIVE_COMPOSE = "archive_compose"
    POLICIES = "policies"
    VERIFY = "verify"
    REMOVE_CONTAINERS = "remove_containers"
    REMOVE_NETWORKS = "remove_networks"
    REMOVE_VOLUMES = "remove_volumes"
    ROLLBACK = "rollback"


@dataclass
class Step:
    """One step of a run: its own label (``name``), what it touches and its result."""

    name: str
    status: StepStatus = StepStatus.PENDING
    detail: str = ""
    resources: list[str] = field(default_factory=list)
    kind: StepKind | None = None  # decommission steps; restore's are made as they run
    target: str | None = None

    def done(self, detail: str = "") -> Step:
        self.status, self.detail = StepStatus.DONE, detail
        return self

    def skipped(self, detail: str) -> Step:
        self.status, self.detail = StepStatus.SKIPPED, detail
        return self

    def failed(self, detail: str) -> Step:
        self.status, self.detail = StepStatus.FAILED, detail
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "resources": list(self.resources),
        }


@dataclass(frozen=True)
class Note:
    """One line of a step's detail, and whether what it reports went as intended."""

    text: str
    ok: bool = True


@dataclass
class ContainerReport:
    name: str
    role: str
    state_before: str
    state_after: str
    restart_policy_before: str
    restart_policy_after: str
    evidence: list[str] = field(default_factory=list)  # why this role (roles.py)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "state_before": self.state_before,
            "state_after": self.state_after,
            "restart_policy_before": self.restart_policy_before,
            "restart_policy_after": self.restart_policy_after,
            "evidence": list(self.evidence),
        }


@dataclass
class SecurityReport:
    proxy_image: str | None = None
    litellm_version: str | None = None
    pth_file: bool | None = None
    compromised: bool = False
    detail: str = ""
    key_names: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "proxy_image": self.proxy_image,
            "litellm_version": self.litellm_version,
            "litellm_init_pth": self.pth_file,
            "compromised": self.compromised,
            "detail": self.detail,
            "rotate_keys": list(self.key_names),
        }


@dataclass
class InterlockReport:
    checked: bool
    via_proxy: int = 0
    by_location: dict[str, int] = field(default_factory=dict)
    forced: bool = False
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    # the newest recorded ``verify --against-proxy`` run, summarised (None: never run)
    proxy_comparison: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "via_proxy": self.via_proxy,
            "by_location": dict(self.by_location),
            "forced": self.forced,
            "reason": self.reason,
            "warnings": list(self.warnings),
            "proxy_comparison": self.proxy_comparison,
        }


@dataclass
class RunResult:
    """What a decommission or restore run did; the CLI renders it."""

    schema: str
    project: str
    dry_run: bool
    steps: list[Step] = field(default_factory=list)
    archive: str | None = None
    containers: list[ContainerReport] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    networks: list[dict[str, Any]] = field(default_factory=list)
    estimated_size: int | None = None
    archive_verified: bool = False
    rolled_back: bool = False
    security: SecurityReport | None = None
    interlock: InterlockReport | None = None
    warnings: list[str] = field(default_factory=list)
    compose_dir: str | None = None
    error: str | None = None
    exit_code: int = 0

    def step(
        self,
        name: str,
        resources: list[str] | None = None,
        *,
        kind: StepKind | None = None,
        target: str | None = None,
    ) -> Step:
        s = Step(name, resources=list(resources or []), kind=kind, target=target)
        self.steps.append(s)
        return s

    def find(self, kind: StepKind, target: str | None = None) -> Step:
        """The planned step of this kind (and target); LookupError when none was planned."""
        for s in self.steps:
            if s.kind == kind and s.target == target:
                return s
        raise LookupError(f"no {kind} step planned" + (f" for {target}" if target else ""))

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": self.schema,
            "project": self.project,
            "dry_run": self.dry_run,
            "steps": [s.as_dict() for s in self.steps],
            "archive": self.archive,
            "containers": [c.as_dict() for c in self.containers],
            "volumes": self.volumes,
            "networks": self.networks,
            "archive_verified": self.archive_verified,
            "rolled_back": self.rolled_back,
            "warnings": list(self.warnings),
            "exit_code": self.exit_code,
        }
        if self.schema == DECOMMISSION_SCHEMA:
            out["estimated_size"] = self.estimated_size
            out["security"] = self.security.as_dict() if self.security else None
            out["interlock"] = self.interlock.as_dict() if self.interlock else None
        else:
            out["compose_dir"] = self.compose_dir
        if self.error:
            out["error"] = self.error
        return out
