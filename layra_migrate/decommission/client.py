"""Reaching the Docker engine: bounded timeouts, one-line errors.

``docker.from_env()`` contacts the daemon at once; later faults may surface as
``requests`` exceptions. Both become :class:`UnreachableError` (exit 3) when
the engine does not answer, or :class:`DockerOperationError` for a refused
operation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from layra_migrate import redact
from layra_migrate.errors import LayraMigrateError, UnreachableError

if TYPE_CHECKING:
    import docker

CONNECT_TIMEOUT_S = 5.0
OPERATION_TIMEOUT_S = 120.0


class DockerOperationError(LayraMigrateError):
    """The engine answered but refused or failed an operation."""


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(timeout_s: float = CONNECT_TIMEOUT_S) -> docker.DockerClient:
    """A client for ``DOCKER_HOST``; exit 3 within ``timeout_s`` when nothing answers."""
    import docker
    import requests

    try:
        client = docker.from_env(timeout=int(max(1, timeout_s)), version="auto")
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise UnreachableError(
            f"Docker engine at {redact.scrub(docker_host())} is unreachable "
            f"({exc.__class__.__name__})",
            hint="check DOCKER_HOST and that dockerd runs",
        ) from None
    client.api.timeout = int(OPERATION_TIMEOUT_S)
    return client


@contextmanager
def docker_errors(what: str) -> Iterator[None]:
    """Translate SDK and transport failures inside the block into the error tree."""
    import docker
    import requests

    try:
        yield
    except LayraMigrateError:
        raise
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise UnreachableError(
            f"Docker engine stopped answering during {what} ({exc.__class__.__name__})"
        ) from None
    except docker.errors.APIError as exc:
        msg = exc.explanation if isinstance(exc.explanation, str) else str(exc)
        raise DockerOperationError(f"{what}: {redact.scrub(str(msg))}") from None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise DockerOperationError(f"{what}: {redact.scrub(str(exc))}") from None
