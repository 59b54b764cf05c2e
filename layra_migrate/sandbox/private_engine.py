"""A private Docker engine for the sandbox job and the Docker tests.

``dockerd`` is started with its own socket, data root and exec root under a fresh
folder in /tmp (``--bridge=none --iptables=false --ip-masq=false``: it touches neither
the host's network nor another engine), tried with the default storage driver, then
with ``vfs`` where overlay cannot mount (nested or unusual file systems), and stopped
by PID. It needs root, ``dockerd`` (Debian ``docker.io``) and, for the sandbox's
images, a static busybox (``busybox-static``).

:func:`why_not` says in one sentence why no engine can be started here; :func:`start`
returns a running :class:`PrivateEngine` or the reason it did not come up.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layra_migrate.sandbox import docker_stack as ds

READY_TIMEOUT_S = 40.0
STORAGE_CHOICES: tuple[tuple[str, ...], ...] = ((), ("--storage-driver=vfs",))


@dataclass
class PrivateEngine:
    host: str  # unix:///tmp/lmd-.../docker.sock
    client: Any
    proc: subprocess.Popen[bytes] | None = None
    root: Path | None = None
    notes: list[str] = field(default_factory=list)


def find_dockerd() -> str | None:
    found = shutil.which("dockerd")
    if found:
        return found
    return "/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None


def why_not(*, need_busybox: bool = True) -> str | None:
    """Why a private engine cannot be started here (one sentence), or None."""
    if os.geteuid() != 0:
        return "starting a private dockerd needs root"
    if not find_dockerd():
        return "dockerd is not installed (Debian: apt-get install docker.io)"
    if need_busybox:
        busybox = ds.find_busybox()
        if not busybox or not ds.is_static_elf(busybox):
            return (
                "a static busybox is not installed (Debian: apt-get install busybox-static; "
                "the fake stack's images are built from it)"
            )
    return None


def smoke_test(client: Any, busybox: str | None = None) -> str | None:
    """Import a one-binary image and run one container: namespaces, cgroups and the
    storage driver work. None when they do, else what failed."""
    ref = f"layra-migrate-smoke-{uuid.uuid4().hex[:8]}/app:1"
    api = client.api
    try:
        ds.build_images(client, {"app": ref}, busybox)
        c = api.create_container(
            ref, command=["true"], host_config=api.create_host_config(network_mode="none")
        )
        try:
            api.start(c["Id"])
            code = api.wait(c["Id"], timeout=30).get("StatusCode")
        finally:
            api.remove_container(c["Id"], force=True)
        return None if code == 0 else f"a test container exited {code}"
    except Exception as exc:  # noqa: BLE001 - reported as the reason
        return f"cannot run a container: {exc.__class__.__name__}: {exc}"
    finally:
        ds.remove_images(client, {"app": ref})


def start(smoke: Callable[[Any], str | None] | None = smoke_test) -> PrivateEngine | str:
    """A running private engine (smoke-tested), or why none could be started."""
    dockerd = find_dockerd()
    if not dockerd:
        return "dockerd is not installed (Debian: apt-get install docker.io)"
    failures = []
    for extra in STORAGE_CHOICES:
        launched = launch(dockerd, list(extra))
        if isinstance(launched, str):
            failures.append(launched)
            continue
        problem = smoke(launched.client) if smoke is not None else None
        if problem is None:
            launched.notes.append("dockerd " + (" ".join(extra) or "(default storage driver)"))
            return launched
        failures.append(f"dockerd {' '.join(extra) or '(default storage driver)'}: {problem}")
        shutdown(launched)
    return "; ".join(failures)


def launch(dockerd: str, extra: list[str]) -> PrivateEngine | str:
    """Start one dockerd and wait until it answers; the reason when it does not."""
    import docker

    # Short paths: unix socket paths are limited to 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="lmd-", dir="/tmp"))
    sock = root / "docker.sock"
    cmd = [
        dockerd,
        "--host",
        f"unix://{sock}",
        "--data-root",
        str(root / "data"),
        "--exec-root",
        str(root / "exec"),
        "--pidfile",
        str(root / "docker.pid"),
        "--bridge=none",
        "--iptables=false",
        "--ip-masq=false",
        *extra,
    ]
    with (root / "dockerd.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    host = f"unix://{sock}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if sock.exists():
            try:
                client = docker.DockerClient(base_url=host, timeout=30, version="auto")
                client.ping()
                return PrivateEngine(host, client, proc, root)
            except Exception:  # noqa: BLE001 - not ready yet
                pass
        time.sleep(0.3)
    stop(proc)
    tail = (root / "dockerd.log").read_text(errors="replace")[-1200:]
    shutil.rmtree(root, ignore_errors=True)
    return f"dockerd {' '.join(extra)} did not come up: {tail}"


def shutdown(engine: PrivateEngine, *, remove_now: bool = True) -> None:
    """Remove every container, stop the daemon by PID, delete its folder (in the
    background with ``remove_now=False``)."""
    client = engine.client
    try:
        for c in client.api.containers(all=True):
            client.api.remove_container(c["Id"], force=True)
    except Exception:  # noqa: BLE001 - the daemon is stopped below anyway
        pass
    client.close()
    if engine.proc is not None:
        stop(engine.proc)
    if engine.root is not None:
        if remove_now:
            shutil.rmtree(engine.root, ignore_errors=True)
        else:
            _remove_later(engine.root)


def _remove_later(root: Path) -> None:
    try:
        subprocess.Popen(
            ["rm", "-rf", "--one-file-system", str(root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        shutil.rmtree(root, ignore_errors=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
