"""Start and stop local servers for the sandbox and the tests (separate processes)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout_s:g}s")


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def uri(self) -> str:
        if self.name == "redis":
            return f"redis://127.0.0.1:{self.port}/0"
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def _secantus_cmd() -> list[str]:
    exe = shutil.which("secantusd-py") or str(Path(sys.executable).parent / "secantusd-py")
    if not Path(exe).exists():
        raise RuntimeError(
            "secantusd-py not found: install the sandbox extras (pip install -e '.[sandbox]')"
        )
    return [exe]


def start_mongo(storage: Path, port: int | None = None, *, standalone: bool = True) -> Server:
    """SecantusDB on loopback. ``standalone`` makes it answer like a plain mongod
    (no replica set, so no transactions), which is Layra's default deployment."""
    port = port or free_port()
    storage.mkdir(parents=True, exist_ok=True)
    log = storage.parent / f"{storage.name}.log"
    cmd = _secantus_cmd() + [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        str(storage),
        "--log-level",
        "WARNING",
    ]
    if standalone:
        cmd.append("--standalone")
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ}
        )
    try:
        wait_port(port, 30, proc)
    except Exception:
        proc.kill()
        raise
    return Server("mongo", port, proc, log)


def start_redis(workdir: Path, port: int | None = None) -> Server | None:
    """redis-server on loopback, or None when the binary is not installed."""
    exe = shutil.which("redis-server")
    if exe is None:
        return None
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "redis.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
                "--protected-mode",
                "yes",
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_port(port, 15, proc)
    return Server("redis", port, proc, log)
