"""Which container of the stack is the proxy, the database or the cache, and why.

The decision rests on what a container really is, not on its image name alone: a
database has ``POSTGRES_*`` / ``PGDATA`` in its environment (the official image's
own ``PG_MAJOR``/``PG_VERSION`` too, Bitnami's ``POSTGRESQL_*``), a mount at its data
directory, ``postgres`` as its command, a ``pg_isready`` health check, port 5432.
A cache runs ``redis-server``/``valkey-server``, carries ``REDIS_VERSION``, answers
``redis-cli ping``. The proxy holds ``LITELLM_*`` settings and comes from LiteLLM's
image. Each signal has a weight; the role with the most weight wins, ties going to
the database (a database taken for the proxy would be stopped first and never
dumped; the other way round costs one failed dump attempt). The evidence of the
winning role is kept and shown in the dry run.

``pgvector/pgvector``, ``bitnami/postgresql``, ``timescale/timescaledb`` and a
home-built ``acme/litellm-db`` image are all databases by their environment and
mounts, whatever their names say.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

PROXY, DATABASE, CACHE, OTHER = "proxy", "database", "cache", "other"
# Tie-break order: the safer mistake first (see the module docstring).
_PRIORITY = (DATABASE, CACHE, PROXY)

STRONG, MEDIUM, WEAK = 3, 2, 1

_PG_IMAGE_ENV = ("PGDATA", "PG_MAJOR", "PG_VERSION")
_PG_DATA_DIRS = (
    "/var/lib/postgresql/data",
    "/var/lib/postgresql",
    "/bitnami/postgresql",
    "/home/postgres/pgdata",
)
_PG_IMAGE_WORDS = ("postgres", "postgis", "timescale", "pgvector", "pgvecto", "postgresql")
_PG_SERVICES = ("db", "database", "postgres", "postgresql", "pg", "pgvector", "pgdb")

_CACHE_SERVERS = (
    "redis-server",
    "valkey-server",
    "keydb-server",
    "redis-stack-server",
    "dragonfly",
)
_CACHE_IMAGE_WORDS = ("redis", "valkey", "keydb", "dragonfly")
_CACHE_DATA_DIRS = ("/bitnami/redis", "/bitnami/valkey")
_CACHE_SERVICES = ("redis", "cache", "valkey", "keydb", "dragonfly")

_PROXY_IMAGES = ("berriai/litellm", "litellm/litellm")
_PROXY_SERVICES = ("litellm", "proxy", "litellm-proxy", "litellm_proxy", "llm-proxy")


@dataclass
class RoleDecision:
    role: str
    evidence: list[str]
    scores: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "evidence": list(self.evidence), "scores": dict(self.scores)}


@dataclass
class ContainerFacts:
    """What role detection reads from ``docker inspect`` (environment *names* only,
    except ``PGDATA``, whose value is a path)."""

    name: str = ""
    service: str | None = None
    image: str = ""
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[str] = field(default_factory=list)  # destinations
    command: list[str] = field(default_factory=list)  # entrypoint + cmd
    healthcheck: list[str] = field(default_factory=list)
    ports: list[str] = field(default_factory=list)  # "5432/tcp"

    @classmethod
    def from_inspect(cls, attrs: dict[str, Any], service: str | None = None) -> ContainerFacts:
        config = attrs.get("Config") or {}
        env: dict[str, str] = {}
        for item in config.get("Env") or []:
            k, _, v = str(item).partition("=")
            env[k] = v
        command = [str(x) for x in (config.get("Entrypoint") or [])]
        command += [str(x) for x in (config.get("Cmd") or [])]
        ports = list((config.get("ExposedPorts") or {}).keys())
        return cls(
            name=str(attrs.get("Name", "")).lstrip("/"),
            service=service,
            image=str(config.get("Image") or ""),
            env=env,
            mounts=[str(m.get("Destination", "")) for m in attrs.get("Mounts") or []],
            command=command,
            healthcheck=[str(x) for x in ((config.get("Healthcheck") or {}).get("Test") or [])],
            ports=[str(p) for p in ports],
        )


def _image_parts(image: str) -> tuple[str, str]:
    """(repository path without registry and tag, last path component)."""
    ref = image.lower().rsplit("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref = ref[: len(ref) - len(last)] + last.split(":", 1)[0]
    parts = ref.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]  # a registry host
    repo = "/".join(parts)
    return repo, parts[-1]


def _words(tokens: list[str]) -> list[str]:
    """Every token and the basename of every path-like token, split on spaces (shell
    forms such as ``CMD-SHELL pg_isready -U x``)."""
    out: list[str] = []
    for t in tokens:
        for w in t.split():
            out.append(w)
            out.append(posixpath.basename(w))
    return out


def detect(facts: ContainerFacts) -> RoleDecision:
    """The role with the most evidence (see the module docstring)."""
    ev: dict[str, list[tuple[int, str]]] = {DATABASE: [], CACHE: [], PROXY: []}
    env_names = set(facts.env)
    repo, base = _image_parts(facts.image)
    svc = (facts.service or "").lower()
    name = facts.name.lower()
    cmd = _words(facts.command)
    health = " ".join(facts.healthcheck)

    # -- database -------------------------------------------------------------------
    pg_image_env = sorted(n for n in env_names if n in _PG_IMAGE_ENV or n.startswith("POSTGRESQL_"))
    pg_env = sorted(n for n in env_names if n.startswith("POSTGRES_"))
    if pg_image_env:
        ev[DATABASE].append((STRONG, "env " + ", ".join(pg_image_env)))
    if pg_env:
        ev[DATABASE].append((MEDIUM, "env " + ", ".join(pg_env)))
    pgdata = facts.env.get("PGDATA", "").rstrip("/")
    pg_mounts = [
        m
        for m in facts.mounts
        if m.rstrip("/") in _PG_DATA_DIRS
        or (pgdata and (m.rstrip("/") == pgdata or pgdata.startswith(m.rstrip("/") + "/")))
    ]
    if pg_mounts:
        ev[DATABASE].append((STRONG, "mount at " + ", ".join(sorted(set(pg_mounts)))))
    if any(w in ("postgres", "pg_ctl", "pg_ctlcluster") for w in cmd) or any(
        "/postgresql/" in w for w in cmd
    ):
        ev[DATABASE].append((STRONG, "command runs postgres"))
    if "pg_isready" in health:
        ev[DATABASE].append((STRONG, "health check pg_isready"))
    if any(w in base for w in _PG_IMAGE_WORDS) or base in ("pg", "pgsql"):
        ev[DATABASE].append((MEDIUM, f"image {facts.image}"))
    if "5432/tcp" in facts.ports:
        ev[DATABASE].append((WEAK, "port 5432"))
    if (
        svc in _PG_SERVICES
        or "postgres" in name
        or name.endswith(("_db", "-db"))
        or "-db-" in name
        or "_db_" in name
    ):
        ev[DATABASE].append((WEAK, f"service {svc}" if svc in _PG_SERVICES else f"name {name}"))

    # -- cache ----------------------------------------------------------------------------
    servers = sorted({w for w in cmd if w in _CACHE_SERVERS})
    if servers:
        ev[CACHE].append((STRONG, "command runs " + ", ".join(servers)))
    if "redis-cli" in health or "valkey-cli" in health:
        ev[CACHE].append((STRONG, "health check redis-cli/valkey-cli"))
    cache_image_env = sorted(
        n for n in env_names if n in ("REDIS_VERSION", "VALKEY_VERSION", "REDIS_DOWNLOAD_URL")
    )
    if cache_image_env:
        ev[CACHE].append((STRONG, "env " + ", ".join(cache_image_env)))
    cache_env = sorted(
        n for n in env_names if n.startswith(("REDIS_", "VALKEY_")) and n not in cache_image_env
    )
    if cache_env:
        ev[CACHE].append((WEAK, "env " + ", ".join(cache_env)))
    cache_mounts = [m for m in facts.mounts if m.rstrip("/") in _CACHE_DATA_DIRS]
    if cache_mounts:
        ev[CACHE].append((STRONG, "mount at " + ", ".join(sorted(set(cache_mounts)))))
    if any(w in base for w in _CACHE_IMAGE_WORDS):
        ev[CACHE].append((MEDIUM, f"image {facts.image}"))
    if "6379/tcp" in facts.ports:
        ev[CACHE].append((WEAK, "port 6379"))
    if svc in _CACHE_SERVICES or "redis" in name or "valkey" in name:
        ev[CACHE].append((WEAK, f"service {svc}" if svc in _CACHE_SERVICES else f"name {name}"))

    # -- proxy ----------------------------------------------------------------------------
    litellm_env = sorted(
        n
        for n in env_names
        if n.startswith("LITELLM_") or n in ("STORE_MODEL_IN_DB", "PROXY_MASTER_KEY")
    )
    if litellm_env:
        ev[PROXY].append((STRONG, "env " + ", ".join(litellm_env)))
    if any(
        repo == p or repo.startswith(p + "-") or repo.startswith(p + "_") for p in _PROXY_IMAGES
    ):
        ev[PROXY].append((STRONG, f"image {facts.image}"))
    elif "litellm" in base:
        # A name only: a home-built database image may be called litellm-db.
        ev[PROXY].append((WEAK, f"image name {facts.image}"))
    if "litellm" in cmd:
        ev[PROXY].append((MEDIUM, "command runs litellm"))
    if "/health/liveliness" in health or "/health/readiness" in health:
        ev[PROXY].append((STRONG, "health check /health/liveliness"))
    if "4000/tcp" in facts.ports:
        ev[PROXY].append((WEAK, "port 4000"))
    if svc in _PROXY_SERVICES or (
        not svc and "litellm" in name and not ev[DATABASE] and not ev[CACHE]
    ):
        ev[PROXY].append((WEAK, f"service {svc}" if svc else f"name {name}"))

    scores = {role: sum(w for w, _ in items) for role, items in ev.items()}
    best = max(scores.values())
    if best == 0:
        return RoleDecision(OTHER, ["no database, cache or proxy signal"], scores)
    role = next(r for r in _PRIORITY if scores[r] == best)
    evidence = [text for _w, text in sorted(ev[role], key=lambda x: -x[0])]
    runner_up = [r for r in _PRIORITY if r != role and scores[r]]
    if runner_up:
        evidence.append(
            "also: " + ", ".join(f"{r} {scores[r]}" for r in runner_up) + f" < {role} {best}"
        )
    return RoleDecision(role, evidence, scores)


def detect_from_inspect(attrs: dict[str, Any], service: str | None = None) -> RoleDecision:
    return detect(ContainerFacts.from_inspect(attrs, service))


@dataclass(frozen=True)
class PgLogin:
    """How to log in to a database container from inside it (no value is ever shown)."""

    user: str
    dbname: str
    password: str | None

    def exec_env(self, *, read_only: bool = False, timeout_s: int = 10) -> dict[str, str]:
        env = {"PGCONNECT_TIMEOUT": str(max(1, timeout_s))}
        if self.password:
            env["PGPASSWORD"] = self.password
        if read_only:
            env["PGOPTIONS"] = (
                f"-c default_transaction_read_only=on -c statement_timeout={timeout_s * 1000}"
            )
        return env


def pg_login(env: dict[str, str]) -> PgLogin:
    """User, database and password from the official image's names, else Bitnami's."""
    user = env.get("POSTGRES_USER") or env.get("POSTGRESQL_USERNAME") or "postgres"
    dbname = env.get("POSTGRES_DB") or env.get("POSTGRESQL_DATABASE") or user
    if env.get("POSTGRESQL_USERNAME") and not env.get("POSTGRES_USER"):
        password = env.get("POSTGRESQL_PASSWORD") or None
    else:
        password = env.get("POSTGRES_PASSWORD") or env.get("POSTGRESQL_PASSWORD") or None
    return PgLogin(user, dbname, password)
