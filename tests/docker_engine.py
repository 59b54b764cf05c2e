"""A real Docker engine for the decommission tests, and a fake LiteLLM stack on it.

``dockerd`` is started once per session with its own socket, data root and exec
root (``--bridge=none --iptables=false --ip-masq=false``) and stopped by PID.
``LAYRA_MIGRATE_TEST_DOCKER_HOST`` points the suite at an existing engine instead.
The images (``docker import`` of a busybox root filesystem, no registry) and the
fake stack come from layra_migrate/sandbox/docker_stack.py, which the sandbox job
uses too; here they get the test label, ``layra-test/*`` image names and canary
secrets.

Without root (or without dockerd/busybox) the tests skip with the reason;
with ``CI=true`` they fail instead.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from layra_migrate.sandbox import docker_stack as ds
from layra_migrate.sandbox import private_engine as pe
from layra_migrate.sandbox.docker_stack import LOOP, FakeStack, destroy_stack, state

__all__ = [
    "CANARY_ENV",
    "DB_PASSWORD",
    "IMAGES",
    "LOOP",
    "TEST_LABEL",
    "Engine",
    "FakeStack",
    "build_images",
    "destroy_stack",
    "make_stack",
    "read_file",
    "start_engine",
    "state",
    "volume_exists",
]

TEST_LABEL = "io.layra-migrate.test"
IMAGES = {
    "proxy": "layra-test/litellm:main-stable",
    "database": "layra-test/postgres:16",
    "cache": "layra-test/redis:7",
    "app": "layra-test/app:1",
}


# The engine itself is the package's private engine (the sandbox job starts it too).
Engine = pe.PrivateEngine


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Docker engine required with CI=true: {reason}")
    pytest.skip(f"no Docker engine: {reason}")


def build_images(client: Any) -> None:
    ds.build_images(client, IMAGES)


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
    if not pe.find_dockerd():
        _unavailable("dockerd not installed (scripts/test.sh installs docker.io as root)")
    if not ds.find_busybox():
        _unavailable("busybox not installed (scripts/test.sh installs busybox-static as root)")
    # Overlay first; vfs when overlay cannot mount here (nested or unusual file systems).
    started = pe.start(smoke=lambda client: _smoke(Engine("", client)))
    if isinstance(started, str):
        _unavailable(started)
        return
    try:
        yield started
    finally:
        # The data root goes in the background: with a real PostgreSQL image and its
        # volumes that is 20 s of disk time nothing waits for.
        pe.shutdown(started, remove_now=False)


def _smoke(engine: Engine) -> str | None:
    """Build the images and run one container: namespaces, cgroups and storage work."""
    api = engine.client.api
    try:
        build_images(engine.client)
        c = api.create_container(
            IMAGES["app"], command=["true"], host_config=api.create_host_config(network_mode="none")
        )
        api.start(c["Id"])
        code = api.wait(c["Id"], timeout=30).get("StatusCode")
        api.remove_container(c["Id"], force=True)
        return None if code == 0 else f"test container exited {code}"
    except Exception as exc:  # noqa: BLE001
        return f"cannot run a container: {exc}"


# -- the fake LiteLLM stack ----------------------------------------------------------------

CANARY_ENV = {
    "OPENAI_API_KEY": "sk-proj-CANARYenvOPENAIkey-0000",
    "DEEPSEEK_API_KEY": "sk-CANARYenvDEEPSEEKkey-0000",
    "LITELLM_MASTER_KEY": "sk-CANARYmasterKEY-0001",
    "LITELLM_SALT_KEY": "sk-salt-CANARYmasterKEYsalt-0000",
}
DB_PASSWORD = "CANARYpassDB0000"


def make_stack(
    client: Any, tmp: Path, images: dict[str, str] | None = None, **kw: Any
) -> FakeStack:
    """The package's fake stack with the test label, test images and canary secrets
    (project ``lmt<run id>``); ``images`` overrides some roles' images (a test that
    removes an image uses a tag of its own: the session's shared stacks keep theirs);
    keyword options as in docker_stack.make_stack."""
    return ds.make_stack(
        client,
        tmp,
        images={**IMAGES, **(images or {})},
        label=TEST_LABEL,
        project_prefix="lmt",
        env=CANARY_ENV,
        db_password=DB_PASSWORD,
        **kw,
    )


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
