"""Security checks at decommissioning time.

PyPI ``litellm`` 1.82.7 and 1.82.8 were credential stealers (1.82.8 adds
``litellm_init.pth``, run at every Python start). We read the proxy's image and,
while it still runs, ``pip show -f litellm`` inside it. Then we list the names
(never the values) of every key-like variable the proxy held, from its
environment and the compose ``.env``: all of them should be rotated.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from layra_migrate.decommission.models import SecurityReport
from layra_migrate.settings import is_secret_name

if TYPE_CHECKING:
    import docker

    from layra_migrate.decommission.discovery import StackContainer

COMPROMISED_VERSIONS = frozenset({"1.82.7", "1.82.8"})
PTH_FILE = "litellm_init.pth"
# Non-secret names that still matter for rotation: database and cache passwords too.
_ALWAYS = ("DATABASE_URL", "REDIS_PASSWORD")


def key_names_from_env(names: list[str]) -> list[str]:
    return sorted({n for n in names if is_secret_name(n) or n in _ALWAYS})


def key_names_from_env_file(path: Path) -> list[str]:
    try:
        from dotenv import dotenv_values

        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError):
        return []
    return key_names_from_env([k for k in values if k])


_ENV_REF = re.compile(r"os\.environ/([A-Za-z_][A-Za-z0-9_]*)")


def key_names_from_config(path: Path) -> list[str]:
    """Key-like variables a LiteLLM config.yaml reads through ``os.environ/NAME``."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return key_names_from_env(_ENV_REF.findall(text))


def check_proxy(client: docker.DockerClient, proxy: StackContainer | None) -> SecurityReport:
    """Image and installed litellm version (when the container runs and has pip)."""
    from layra_migrate.decommission.dump import run_exec

    report = SecurityReport()
    if proxy is None:
        report.detail = "no proxy container found"
        return report
    report.proxy_image = proxy.image
    report.key_names = key_names_from_env(proxy.env_names)
    if not proxy.running:
        report.detail = "proxy not running: installed litellm version not checked"
        return report
    try:
        out, outcome = run_exec(client, proxy.id, ["pip", "show", "-f", "litellm"])
    except Exception as exc:  # noqa: BLE001 - the check is advisory, never fatal
        report.detail = f"pip show failed ({exc.__class__.__name__})"
        return report
    if outcome.exit_code != 0:
        report.detail = (
            f"pip not available in the proxy image (exit {outcome.exit_code})"
            if outcome.exit_code in (126, 127)
            else f"pip show litellm exited {outcome.exit_code}"
        )
        return report
    text = out.decode("utf-8", "replace")
    m = re.search(r"(?im)^Version:\s*(\S+)", text)
    report.litellm_version = m.group(1) if m else None
    report.pth_file = PTH_FILE in text
    reasons = []
    if report.litellm_version in COMPROMISED_VERSIONS:
        reasons.append(f"litellm {report.litellm_version} is a known malicious release")
    if report.pth_file:
        reasons.append(f"{PTH_FILE} is installed (runs at every Python start)")
    report.compromised = bool(reasons)
    report.detail = (
        "; ".join(reasons) + ": treat every key the proxy held as stolen"
        if reasons
        else f"litellm {report.litellm_version or '?'}: not a known malicious release"
    )
    return report
