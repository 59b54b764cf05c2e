"""Role detection from what a container is (environment, mounts, command, health check,
ports, service, image), not from its image name alone (decommission/roles.py).

The inspect shapes mirror the images' real configuration: the official postgres image
(and pgvector/pgvector, built FROM it) sets ``PG_MAJOR``, ``PG_VERSION`` and ``PGDATA``;
Bitnami's sets ``POSTGRESQL_*`` and runs /opt/bitnami/scripts/postgresql/run.sh; the
official redis image sets ``REDIS_VERSION``; LiteLLM's compose gives the database a
``pg_isready`` health check.
"""

from __future__ import annotations

from typing import Any

import pytest

from layra_migrate.decommission.pg_errors import explain
from layra_migrate.decommission.roles import detect_from_inspect, pg_login

OFFICIAL_PG_ENV = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/postgresql/16/bin",
    "GOSU_VERSION=1.17",
    "LANG=en_US.utf8",
    "PG_MAJOR=16",
    "PG_VERSION=16.4-1.pgdg120+2",
    "PGDATA=/var/lib/postgresql/data",
]
LITELLM_DB_ENV = [
    "POSTGRES_DB=litellm",
    "POSTGRES_USER=llmproxy",
    "POSTGRES_PASSWORD=dbpassword9090",
]
PG_HEALTH = {"Test": ["CMD-SHELL", "pg_isready -d litellm -U llmproxy"]}


def inspect(
    name: str,
    image: str,
    *,
    env: list[str] | None = None,
    mounts: list[str] | None = None,
    cmd: list[str] | None = None,
    entrypoint: list[str] | None = None,
    health: dict[str, Any] | None = None,
    ports: list[str] | None = None,
    service: str | None = None,
) -> dict[str, Any]:
    labels = {"com.docker.compose.service": service} if service else {}
    return {
        "Name": f"/{name}",
        "Config": {
            "Image": image,
            "Env": env or [],
            "Cmd": cmd,
            "Entrypoint": entrypoint,
            "Healthcheck": health,
            "ExposedPorts": {p: {} for p in ports or []},
            "Labels": labels,
        },
        "Mounts": [{"Type": "volume", "Destination": d} for d in mounts or []],
    }


def role(attrs: dict[str, Any]) -> tuple[str, list[str]]:
    service = attrs["Config"]["Labels"].get("com.docker.compose.service")
    d = detect_from_inspect(attrs, service)
    return d.role, d.evidence


DATABASES = {
    "pgvector": inspect(
        "p-db-1",
        "pgvector/pgvector:pg16",
        env=OFFICIAL_PG_ENV + LITELLM_DB_ENV,
        mounts=["/var/lib/postgresql/data"],
        cmd=["postgres"],
        entrypoint=["docker-entrypoint.sh"],
        health=PG_HEALTH,
        ports=["5432/tcp"],
        service="db",
    ),
    "bitnami": inspect(
        "p-postgresql-1",
        "bitnami/postgresql:16.4.0",
        env=[
            "BITNAMI_APP_NAME=postgresql",
            "PGDATA=/bitnami/postgresql/data",
            "POSTGRESQL_USERNAME=llmproxy",
            "POSTGRESQL_PASSWORD=x",
            "POSTGRESQL_DATABASE=litellm",
            "POSTGRESQL_VOLUME_DIR=/bitnami/postgresql",
        ],
        mounts=["/bitnami/postgresql"],
        cmd=["/opt/bitnami/scripts/postgresql/run.sh"],
        entrypoint=["/opt/bitnami/scripts/postgresql/entrypoint.sh"],
        ports=["5432/tcp"],
        service="postgresql",
    ),
    # Home-built, named after the proxy, in a stack without compose.
    "home-built litellm-db": inspect(
        "litellm-storage",
        "registry.acme.internal:5000/platform/litellm-db:2025.11",
        env=LITELLM_DB_ENV + ["PGDATA=/srv/pg"],
        mounts=["/srv/pg"],
        cmd=["postgres"],
    ),
    "ghcr litellm-postgres": inspect(
        "p-db-1",
        "ghcr.io/acme/litellm-postgres:16",
        env=LITELLM_DB_ENV,
        mounts=["/var/lib/postgresql/data"],
    ),
    "timescale": inspect(
        "tsdb", "timescale/timescaledb:latest-pg16", env=OFFICIAL_PG_ENV + LITELLM_DB_ENV
    ),
}


@pytest.mark.parametrize("case", list(DATABASES))
def test_databases_found_whatever_the_image_is_called(case: str) -> None:
    got, evidence = role(DATABASES[case])
    assert got == "database", (case, evidence)
    assert evidence


def test_home_built_image_named_litellm_is_not_the_proxy() -> None:
    got, evidence = role(DATABASES["home-built litellm-db"])
    assert got == "database"
    text = " | ".join(evidence)
    assert "env PGDATA" in text and "mount at /srv/pg" in text and "command runs postgres" in text
    assert "proxy" in text  # the losing signal is shown too (also: proxy 1 < database ...)


CACHES = {
    "redis": inspect(
        "p-redis-1",
        "redis:7-alpine",
        env=["REDIS_VERSION=7.4.1"],
        cmd=["redis-server", "--appendonly", "yes"],
        mounts=["/data"],
        ports=["6379/tcp"],
        service="redis",
    ),
    "valkey": inspect(
        "litellm-cache",
        "valkey/valkey:8",
        cmd=["valkey-server"],
        health={"Test": ["CMD", "valkey-cli", "ping"]},
    ),
    "bitnami redis": inspect(
        "kv",
        "bitnami/redis:7.4",
        env=["REDIS_PASSWORD=x", "ALLOW_EMPTY_PASSWORD=no"],
        mounts=["/bitnami/redis/data", "/bitnami/redis"],
        cmd=["/opt/bitnami/scripts/redis/run.sh"],
    ),
    "home-built": inspect(
        "p-kv-1", "acme/litellm-kv:1", cmd=["redis-server", "/etc/redis.conf"], service="kv"
    ),
}


@pytest.mark.parametrize("case", list(CACHES))
def test_caches(case: str) -> None:
    assert role(CACHES[case])[0] == "cache"


def test_proxy_with_database_and_redis_settings_in_its_env_is_the_proxy() -> None:
    """LiteLLM's compose gives the proxy the whole .env (often POSTGRES_PASSWORD too) and
    Redis settings: its LITELLM_* settings and image still make it the proxy."""
    attrs = inspect(
        "p-litellm-1",
        "ghcr.io/berriai/litellm-database:main-v1.74.9",
        env=[
            "LITELLM_MASTER_KEY=sk-x",
            "LITELLM_SALT_KEY=sk-y",
            "DATABASE_URL=postgresql://llmproxy:pw@db:5432/litellm",
            "POSTGRES_PASSWORD=pw",
            "REDIS_HOST=redis",
            "REDIS_PASSWORD=z",
            "STORE_MODEL_IN_DB=True",
        ],
        cmd=["--config", "/app/config.yaml", "--port", "4000"],
        health={"Test": ["CMD-SHELL", "wget -qO- http://localhost:4000/health/liveliness"]},
        ports=["4000/tcp"],
        service="litellm",
    )
    got, evidence = role(attrs)
    assert got == "proxy", evidence
    assert any("LITELLM_MASTER_KEY" in e for e in evidence)


def test_nothing_known_is_other() -> None:
    assert (
        role(
            inspect(
                "p-prometheus-1", "prom/prometheus", cmd=["--config.file=x"], service="prometheus"
            )
        )[0]
        == "other"
    )


def test_tie_goes_to_the_database() -> None:
    # Only names: service "db" (database, weak) against a name with litellm (proxy, weak).
    got, _ = role(inspect("litellm-stuff", "acme/thing:1", service="db"))
    assert got == "database"


def test_pg_login_official_and_bitnami_spellings() -> None:
    official = pg_login(dict(e.split("=", 1) for e in LITELLM_DB_ENV))
    assert (official.user, official.dbname, official.password) == (
        "llmproxy",
        "litellm",
        "dbpassword9090",
    )
    bitnami = pg_login(
        {"POSTGRESQL_USERNAME": "app", "POSTGRESQL_PASSWORD": "p", "POSTGRESQL_DATABASE": "litellm"}
    )
    assert (bitnami.user, bitnami.dbname, bitnami.password) == ("app", "litellm", "p")
    bare = pg_login({})
    assert (bare.user, bare.dbname, bare.password) == ("postgres", "postgres", None)
    env = official.exec_env(read_only=True, timeout_s=5)
    assert env["PGOPTIONS"].startswith("-c default_transaction_read_only=on")
    assert env["PGCONNECT_TIMEOUT"] == "5"


@pytest.mark.parametrize(
    "stderr,code",
    [
        (
            'pg_dump: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" '
            'failed: FATAL:  password authentication failed for user "llmproxy"',
            "auth_failed",
        ),
        (
            'pg_dump: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" '
            'failed: FATAL:  database "litellm" is not currently accepting connections',
            "refuses_connections",
        ),
        ('FATAL:  no pg_hba.conf entry for host "[local]", user "llmproxy"', "hba_rejects"),
        ('FATAL:  role "llmproxy" does not exist', "role_missing"),
        ('FATAL:  database "litellm" does not exist', "db_missing"),
        (
            "FATAL:  sorry, too many clients already; remaining connection slots are reserved",
            "no_slots",
        ),
        (
            'connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: '
            "No such file or directory",
            "no_server",
        ),
        (
            "pg_dump: error: query failed: ERROR:  canceling statement due to lock timeout",
            "lock_timeout",
        ),
    ],
)
def test_pg_failures_are_named(stderr: str, code: str) -> None:
    f = explain(stderr, user="llmproxy", dbname="litellm", container="p-db-1")
    assert f is not None and f.code == code
    assert (
        "llmproxy" in f.text()
        or "litellm" in f.text()
        or code in ("no_slots", "no_server", "lock_timeout")
    )


def test_unknown_failure_is_not_guessed() -> None:
    assert explain("pg_dump: error: something new", user="u", dbname="d", container="c") is None
