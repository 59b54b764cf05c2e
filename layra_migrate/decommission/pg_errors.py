"""What a failed ``pg_dump``/``psql`` inside the database container means, in one phrase.

PostgreSQL's client errors are precise but long (socket paths, ``FATAL:`` prefixes);
the operator needs the cause and what to do. Pure string matching on the scrubbed
stderr tail: no value (password, key) is ever part of the answer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PgFailure:
    code: str
    cause: str
    fix: str

    def text(self) -> str:
        return f"{self.cause} ({self.fix})"


_RULES: tuple[tuple[tuple[str, ...], str, str, str], ...] = (
    (
        ("password authentication failed", "password must be supplied", "no password supplied"),
        "auth_failed",
        "the container's POSTGRES_PASSWORD does not log in as {user} (changed since the "
        "container was created?)",
        "to dump by hand: docker exec -it {container} pg_dump -U "
        "{user} -d {dbname} -Fc > litellm.dump, with the current password",
    ),
    (
        ("is not currently accepting connections",),
        "refuses_connections",
        "database {dbname} refuses connections (ALLOW_CONNECTIONS is false)",
        "ALTER DATABASE {dbname} ALLOW_CONNECTIONS true, then decommission again for a "
        "logical dump",
    ),
    (
        ("no pg_hba.conf entry", "pg_hba.conf rejects"),
        "hba_rejects",
        "pg_hba.conf rejects local connections as {user}",
        "allow them in pg_hba.conf for a logical dump",
    ),
    (
        ("too many connections", "remaining connection slots are reserved"),
        "no_slots",
        "the server has no free connection slot",
        "retry when the load is lower",
    ),
    (
        (
            "the database system is starting up",
            "the database system is shutting down",
            "the database system is in recovery mode",
            "not yet accepting connections",
        ),
        "not_ready",
        "the server is not ready (starting, stopping or recovering)",
        "wait until pg_isready succeeds",
    ),
    (
        ("could not obtain lock", "lock timeout", "canceling statement due to lock timeout"),
        "lock_timeout",
        "another session held a lock for more than 30 s",
        "stop what holds the lock (the proxy is already stopped)",
    ),
    (
        ("no space left on device",),
        "disk_full",
        "the container's disk is full",
        "free space in the container",
    ),
    (
        ('role "',),
        "role_missing",
        "role {user} does not exist in the server",
        "set POSTGRES_USER to an existing role",
    ),
    (
        ('database "',),
        "db_missing",
        "database {dbname} does not exist",
        "set POSTGRES_DB to the proxy's database",
    ),
    (
        (
            "connection refused",
            "no such file or directory",
            "could not connect to server",
            "connection to server on socket",
        ),
        "no_server",
        "no server answers on the container's default socket",
        "check that postgres runs",
    ),
)


def explain(stderr: str, *, user: str, dbname: str, container: str) -> PgFailure | None:
    """The first rule whose phrase appears in ``stderr`` (most specific first)."""
    low = stderr.lower()
    for phrases, code, cause, fix in _RULES:
        if any(p in low for p in phrases):
            if code == "role_missing" and "does not exist" not in low:
                continue
            if code == "db_missing" and "does not exist" not in low:
                continue
            fmt = {"user": user, "dbname": dbname, "container": container}
            return PgFailure(code, cause.format(**fmt), fix.format(**fmt))
    return None
