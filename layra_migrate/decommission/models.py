"""Result objects shared by decommission and restore."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DECOMMISSION_SCHEMA = "layra-migrate/decommission/v1"
RESTORE_SCHEMA = "layra-migrate/restore/v1"
MANIFEST_SCHEMA = "layra-migrate/decommission-manifest/v1"


@dataclass
class Step:
    name: str
    status: str = "pending"  # pending | done | skipped | failed
    detail: str = ""
    resources: list[str] = field(default_factory=list)

    def done(self, detail: str = "") -> Step:
        self.status, self.detail = "done", detail
        return self

    def skipped(self, detail: str) -> Step:
        self.status, self.detail = "skipped", detail
        return self

    def failed(self, detail: str) -> Step:
        self.status, self.detail = "failed", detail
        return self

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail,
                "resources": list(self.resources)}


@dataclass
class ContainerReport:
    name: str
    role: str
    state_before: str
    state_after: str
    restart_policy_before: str
    restart_policy_after: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "state_before": self.state_before,
                "state_after": self.state_after,
                "restart_policy_before": self.restart_policy_before,
                "restart_policy_after": self.restart_policy_after}


@dataclass
class SecurityReport:
    proxy_image: str | None = None
    litellm_version: str | None = None
    pth_file: bool | None = None
    compromised: bool = False
    detail: str = ""
    key_names: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"proxy_image": self.proxy_image, "litellm_version": self.litellm_version,
                "litellm_init_pth": self.pth_file, "compromised": self.compromised,
                "detail": self.detail, "rotate_keys": list(self.key_names)}


@dataclass
class InterlockReport:
    checked: bool
    via_proxy: int = 0
    by_location: dict[str, int] = field(default_factory=dict)
    forced: bool = False
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "via_proxy": self.via_proxy,
                "by_location": dict(self.by_location), "forced": self.forced,
                "reason": self.reason, "warnings": list(self.warnings)}


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

    def step(self, name: str, resources: list[str] | None = None) -> Step:
        s = Step(name, resources=list(resources or []))
        self.steps.append(s)
        return s

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": self.schema, "project": self.project, "dry_run": self.dry_run,
            "steps": [s.as_dict() for s in self.steps], "archive": self.archive,
            "containers": [c.as_dict() for c in self.containers],
            "volumes": self.volumes, "networks": self.networks,
            "archive_verified": self.archive_verified, "rolled_back": self.rolled_back,
            "warnings": list(self.warnings), "exit_code": self.exit_code,
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
