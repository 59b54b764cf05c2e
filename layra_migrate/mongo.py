"""Connecting to MongoDB through PyMongo's async API, with bounded timeouts.

Every failure becomes one line: an invalid URI or bad credentials exit 2, an
unreachable server exits 3 within the server-selection timeout. The messages
never contain the URI's password.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from layra_migrate import redact
from layra_migrate.errors import ConfigError, UnreachableError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from pymongo import AsyncMongoClient
    from pymongo.asynchronous.database import AsyncDatabase

    from layra_migrate.settings import Settings

_AUTH_FAILED_CODES = {18, 13}


@dataclass(frozen=True)
class Topology:
    """What the server supports: transactions need a replica set or mongos."""

    replica_set: bool
    sharded: bool
    version: str

    @property
    def transactions(self) -> bool:
        return self.replica_set or self.sharded


def make_client(uri: str, timeout_s: float) -> AsyncMongoClient[dict[str, Any]]:
    from pymongo import AsyncMongoClient
    from pymongo.errors import ConfigurationError, InvalidURI

    ms = int(timeout_s * 1000)
    try:
        return AsyncMongoClient(
            uri,
            serverSelectionTimeoutMS=ms,
            connectTimeoutMS=ms,
            socketTimeoutMS=max(ms * 12, 60_000),
            appname="layra-migrate",
            tz_aware=False,
        )
    except (InvalidURI, ConfigurationError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"invalid MongoDB URI {redact.mask_url(uri)!s}: {redact.scrub(str(exc))}",
            hint="use mongodb://USER:PASS@HOST:PORT/?authSource=admin "
            "with URL-escaped user and password",
        ) from None


def translate_error(exc: BaseException, uri: str, timeout_s: float) -> Exception:
    """Map a PyMongo exception to the tool's error tree (one line, no secrets)."""
    from pymongo.errors import (
        AutoReconnect,
        ConfigurationError,
        ConnectionFailure,
        NetworkTimeout,
        OperationFailure,
        ServerSelectionTimeoutError,
    )

    shown = redact.mask_url(uri)
    if isinstance(exc, OperationFailure) and exc.code in _AUTH_FAILED_CODES:
        code = (exc.details or {}).get("codeName") or exc.code
        return ConfigError(
            f"MongoDB at {shown} rejected the credentials ({code})",
            hint="check MONGODB_ROOT_USERNAME/MONGODB_ROOT_PASSWORD or the URI, "
            "and authSource=admin",
        )
    if isinstance(
        exc, (ServerSelectionTimeoutError, NetworkTimeout, AutoReconnect, ConnectionFailure)
    ):
        return UnreachableError(
            f"MongoDB at {shown} is unreachable (no answer within {timeout_s:g}s)",
            hint="check --mongo-uri / MONGODB_URL, that the server runs, "
            "and that its port is published",
        )
    if isinstance(exc, ConfigurationError):
        return ConfigError(f"MongoDB configuration error: {redact.scrub(str(exc))}")
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


async def probe(client: AsyncMongoClient[dict[str, Any]]) -> Topology:
    hello = await client.admin.command("hello")
    build: dict[str, Any] = {}
    try:
        build = await client.admin.command("buildInfo")
    except Exception:  # noqa: BLE001 - version is informative only
        build = {}
    return Topology(
        replica_set=bool(hello.get("setName")),
        sharded=hello.get("msg") == "isdbgrid",
        version=str(build.get("version", "unknown")),
    )


REFUSAL_CHECK_S = 1.0


async def refused(uri: str, timeout_s: float) -> str | None:
    """Why MongoDB cannot be reached at all, when every seed host refuses the TCP
    connection or has no address ("connection refused", "host not found"); None when
    any host might answer (or the URI is a DNS seed list). PyMongo keeps retrying a
    refused server until its timeout; this answers at once."""
    import asyncio
    import socket

    if not uri.startswith("mongodb://"):
        return None
    try:
        from pymongo.uri_parser import parse_uri

        nodes = parse_uri(uri, validate=False)["nodelist"]
    except Exception:  # noqa: BLE001 - PyMongo reports a bad URI itself
        return None

    async def one(host: str, port: int) -> str | None:
        if host.endswith(".sock"):
            return None
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except ConnectionRefusedError:
            return "connection refused"
        except socket.gaierror:
            return "host not found"
        except (OSError, TimeoutError):
            return None
        writer.close()
        return None

    reasons = await asyncio.gather(*(one(h, p) for h, p in nodes)) if nodes else [None]
    return reasons[0] if all(reasons) else None


async def _probe_or_refused(
    client: AsyncMongoClient[dict[str, Any]], uri: str, timeout_s: float
) -> Topology:
    """:func:`probe`, but a server that refuses the connection fails at once (exit 3)
    instead of after the whole timeout. The refusal check runs first, within a second
    (PyMongo's server selection does not stop promptly once started); a host that
    neither answers nor refuses is left to PyMongo's own timeout."""
    reason = await refused(uri, min(timeout_s, REFUSAL_CHECK_S))
    if reason:
        raise UnreachableError(
            f"MongoDB at {redact.mask_url(uri)} is unreachable ({reason})",
            hint="check --mongo-uri / MONGODB_URL, that the server runs, "
            "and that its port is published",
        )
    return await probe(client)


@dataclass
class Connection:
    client: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    topology: Topology
    uri: str
    timeout_s: float


@asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[Connection]:
    """Open a client, check the server answers, yield a :class:`Connection`.

    PyMongo errors raised inside the block are translated too, so a server that
    goes away mid-run is exit 3, not a traceback.
    """
    uri = settings.mongo_uri.value or ""
    db_name = settings.db.value or ""
    if not db_name or any(c in db_name for c in '/\\. "$') or len(db_name) > 63:
        raise ConfigError(f"invalid database name {db_name!r}", hint="pass --db NAME")
    client = make_client(uri, settings.timeout_s)
    try:
        try:
            topology = await _probe_or_refused(client, uri, settings.timeout_s)
        except UnreachableError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise translate_error(exc, uri, settings.timeout_s) from None
        try:
            yield Connection(client, client[db_name], topology, uri, settings.timeout_s)
        except Exception as exc:
            translated = translate_error(exc, uri, settings.timeout_s)
            if translated is exc:
                raise
            raise translated from None
    finally:
        await client.close()
