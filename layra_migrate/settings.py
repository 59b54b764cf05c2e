"""Effective settings: flag > environment > env file > default.

Layra's own variable names are honoured, so ``--env-file`` pointing at Layra's
``.env`` is enough. Every value remembers where it came from (``-v`` shows it,
secrets masked). Secret values are registered with :mod:`redact` as soon as
they are read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

from layra_migrate import redact
from layra_migrate.errors import ConfigError

DEFAULT_MONGO_URI = "mongodb://localhost:27017"
DEFAULT_DB = "chat_mongodb"
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_ENV_FILE = ".env"

# Names whose values are secrets wherever they appear.
_SECRET_NAME_MARKERS = ("KEY", "PASSWORD", "SECRET", "TOKEN", "SALT")


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(m in upper for m in _SECRET_NAME_MARKERS)


@dataclass(frozen=True)
class Sourced:
    """A setting's value and where it came from (flag, env NAME, env-file PATH, default)."""

    value: str | None
    source: str
    secret: bool = False

    def shown(self) -> str:
        if self.value is None:
            return "(not set)"
        if self.secret:
            return redact.mask_secret(self.value) or ""
        return str(redact.mask_url(self.value))


class Environment:
    """Process environment layered over an optional env file (python-dotenv).

    The env file never overrides variables already set, as with
    ``load_dotenv(override=False)``, but the process environment is not mutated:
    each lookup reports which layer answered.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        env_file: str | Path | None = None,
        *,
        env_file_required: bool = False,
    ) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        self.env_file: Path | None = None
        self._file_values: dict[str, str] = {}
        if env_file is not None:
            path = Path(env_file)
            if path.is_file():
                self._load_file(path)
            elif env_file_required:
                raise ConfigError(
                    "env file not found", path=str(path), hint="pass an existing --env-file"
                )
        for name, value in self.items():
            if is_secret_name(name):
                redact.register_secret(value)

    def _load_file(self, path: Path) -> None:
        from dotenv import dotenv_values

        try:
            values = dotenv_values(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read env file: {exc.__class__.__name__}", path=str(path)
            ) from None
        self.env_file = path
        self._file_values = {k: v for k, v in values.items() if v is not None}

    def get(self, name: str) -> str | None:
        if name in self._environ:
            return self._environ[name]
        return self._file_values.get(name)

    def lookup(self, name: str) -> Sourced | None:
        if name in self._environ:
            return Sourced(self._environ[name], f"env {name}", is_secret_name(name))
        if name in self._file_values:
            return Sourced(
                self._file_values[name], f"env-file {self.env_file} ({name})", is_secret_name(name)
            )
        return None

    def items(self) -> list[tuple[str, str]]:
        merged = dict(self._file_values)
        merged.update(self._environ)
        return list(merged.items())


def _first(
    env: Environment, flag: str | None, names: tuple[str, ...], default: str | None
) -> Sourced:
    if flag is not None:
        return Sourced(flag, "flag")
    for name in names:
        found = env.lookup(name)
        if found is not None and found.value != "":
            return Sourced(found.value, found.source)
    return Sourced(default, "default")


def layra_mongo_uri(env: Environment) -> Sourced | None:
    """Build the URI Layra itself uses from MONGODB_URL and the root credentials."""
    url = env.lookup("MONGODB_URL")
    if url is None or not url.value:
        return None
    raw = url.value.strip()
    if raw.startswith(("mongodb://", "mongodb+srv://")):
        return Sourced(raw, url.source)
    user = env.get("MONGODB_ROOT_USERNAME")
    password = env.get("MONGODB_ROOT_PASSWORD")
    if user and password:
        redact.register_secret(password)
        uri = f"mongodb://{quote_plus(user)}:{quote_plus(password)}@{raw}/?authSource=admin"
        return Sourced(uri, url.source + " + MONGODB_ROOT_USERNAME/PASSWORD")
    return Sourced(f"mongodb://{raw}", url.source)


LAYRA_CACHE_DB = 0
"""The Redis DB of Layra's model-config cache. Its ``CacheService`` (the fork's
``app/db/cache.py``) reads and writes through ``redis.get_redis_connection()``, whose
``db`` defaults to 0, whatever ``REDIS_TOKEN_DB`` / ``REDIS_TASK_DB`` / ``REDIS_LOCK_DB``
say; the stock ``.env`` sets ``REDIS_TOKEN_DB=0`` too."""


def layra_redis_url(env: Environment) -> Sourced | None:
    """Build the URL Layra itself connects with from ``REDIS_URL`` (host:port, no scheme,
    as Layra's ``.env`` spells it) and ``REDIS_PASSWORD``, on the cache's DB.

    Layra's code does ``from_url(f"redis://:{password}@{REDIS_URL}", db=N)``; the
    password is escaped here (Layra's stock value has no special characters; an
    operator's may). A ``REDIS_URL`` that already has a scheme is used as given.
    """
    url = env.lookup("REDIS_URL")
    if url is None or not url.value or not url.value.strip():
        return None
    raw = url.value.strip()
    if "://" in raw:
        return Sourced(raw, url.source)
    hostport = raw.rstrip("/")
    if "/" in hostport or "@" in hostport:
        raise ConfigError(
            f"REDIS_URL {redact.scrub(raw)!r} is neither host:port nor a redis:// URL",
            hint="Layra spells it REDIS_URL=redis:6379, with REDIS_PASSWORD separate; "
            "or pass --redis-url redis://:PASSWORD@HOST:6379/0",
        )
    password = env.get("REDIS_PASSWORD")
    source = url.source
    auth = ""
    if password:
        redact.register_secret(password)
        auth = f":{quote(password, safe='')}@"
        source += " + REDIS_PASSWORD"
    return Sourced(f"redis://{auth}{hostport}/{LAYRA_CACHE_DB}", source + f", DB {LAYRA_CACHE_DB}")


@dataclass
class Settings:
    mongo_uri: Sourced
    db: Sourced
    timeout_s: float
    env: Environment
    litellm_config: Sourced = field(default_factory=lambda: Sourced(None, "default"))
    redis_url: Sourced = field(default_factory=lambda: Sourced(None, "default"))
    migrations_dir: Sourced = field(default_factory=lambda: Sourced(None, "default"))

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, masked value, source) rows for ``-v``."""
        rows = [
            ("mongo-uri", self.mongo_uri.shown(), self.mongo_uri.source),
            ("db", self.db.shown(), self.db.source),
            ("timeout", f"{self.timeout_s:g}s", "flag or default"),
            ("env-file", str(self.env.env_file or "(none)"), "flag or ./.env"),
            ("litellm-config", self.litellm_config.shown(), self.litellm_config.source),
            ("redis-url", self.redis_url.shown(), self.redis_url.source),
            ("migrations-dir", self.migrations_dir.shown(), self.migrations_dir.source),
        ]
        return rows


def load_settings(
    *,
    mongo_uri: str | None = None,
    db: str | None = None,
    env_file: str | Path | None = None,
    timeout_s: float | None = None,
    litellm_config: str | None = None,
    redis_url: str | None = None,
    migrations_dir: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every setting with its source. ``env_file=None`` means ``./.env`` if present."""
    explicit = env_file is not None
    env = Environment(
        environ,
        env_file if explicit else DEFAULT_ENV_FILE,
        env_file_required=explicit,
    )
    uri = _first(env, mongo_uri, ("LAYRA_MIGRATE_MONGO_URI",), None)
    if uri.value is None:
        uri = layra_mongo_uri(env) or Sourced(DEFAULT_MONGO_URI, "default")
    redact.register_secret(_uri_password(uri.value))
    if timeout_s is not None and timeout_s <= 0:
        raise ConfigError("--timeout must be a positive number of seconds")
    return Settings(
        mongo_uri=uri,
        db=_first(env, db, ("LAYRA_MIGRATE_DB", "MONGODB_DB"), DEFAULT_DB),
        timeout_s=timeout_s if timeout_s is not None else DEFAULT_TIMEOUT_S,
        env=env,
        litellm_config=_first(env, litellm_config, ("LAYRA_MIGRATE_LITELLM_CONFIG",), None),
        redis_url=_redis(env, redis_url),
        migrations_dir=_first(env, migrations_dir, ("LAYRA_MIGRATE_MIGRATIONS_DIR",), None),
    )


def _redis(env: Environment, flag: str | None) -> Sourced:
    """--redis-url > LAYRA_MIGRATE_REDIS_URL > Layra's REDIS_URL + REDIS_PASSWORD."""
    chosen = _first(env, flag, ("LAYRA_MIGRATE_REDIS_URL",), None)
    if chosen.value is None:
        chosen = layra_redis_url(env) or chosen
    redact.register_secret(_uri_password(chosen.value))
    return chosen


def _uri_password(uri: str | None) -> str | None:
    if not uri or "@" not in uri or "://" not in uri:
        return None
    userinfo = uri.split("://", 1)[1].rsplit("@", 1)[0]
    if ":" not in userinfo:
        return None
    from urllib.parse import unquote

    return unquote(userinfo.split(":", 1)[1])
