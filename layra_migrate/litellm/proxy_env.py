"""The LiteLLM proxy's own environment, as the proxy sees it (names and sources, never values).

LiteLLM reads ``<PROVIDER>_API_BASE`` and the default key variables from its own process
environment when a route does not set them, and ``environment_variables:`` in config.yaml
are written into that environment at start-up (they win over what the process had). The
proxy's process environment usually comes from the compose project's ``.env`` or an
``env_file``: ``--litellm-env-file`` names it, and without it the ``.env`` beside the
compose file is used when the config lives inside a compose project.

When no proxy env file is known the tool's own environment stands in for it, and the
audit says so: the proxy may see different values.

Values are looked up to decide routing; they are never returned for display.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from layra_migrate import redact
from layra_migrate.errors import ConfigError
from layra_migrate.settings import is_secret_name

COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
CONFIG_SECTION = "config.yaml environment_variables"
TOOL_ENV = "your environment"

EnvLookup = Callable[[str], "str | None"]


def find_compose_env(config_path: Path, levels: int = 3) -> Path | None:
    """The ``.env`` beside the compose file of the project holding ``config_path``."""
    here = config_path.resolve().parent
    for _ in range(levels):
        if any((here / n).is_file() for n in COMPOSE_NAMES):
            env = here / ".env"
            return env if env.is_file() else None
        if here.parent == here:
            break
        here = here.parent
    return None


@dataclass
class ProxyEnvironment:
    """Layered lookup: config ``environment_variables`` > proxy env file > fallback."""

    config_values: dict[str, str] = field(default_factory=dict)
    file_values: dict[str, str] = field(default_factory=dict)
    env_file: Path | None = None
    fallback: EnvLookup | None = None

    def get(self, name: str) -> str | None:
        value, _source = self.lookup(name)
        return value

    def lookup(self, name: str) -> tuple[str | None, str | None]:
        """(value, where it came from); the value is for decisions, never for display."""
        if self.config_values.get(name):
            return self.config_values[name], CONFIG_SECTION
        if self.file_values.get(name):
            return self.file_values[name], str(self.env_file)
        if self.env_file is None and self.fallback is not None:
            value = self.fallback(name)
            if value:
                return value, TOOL_ENV
        return None, None

    def process_lookup(self, name: str) -> tuple[str | None, str | None]:
        """Like ``lookup`` without config ``environment_variables``: what ``os.environ/``
        references in ``litellm_params`` see, since LiteLLM resolves them before it applies
        that section (checked against LiteLLM 1.110.2)."""
        if self.file_values.get(name):
            return self.file_values[name], str(self.env_file)
        if self.env_file is None and self.fallback is not None:
            value = self.fallback(name)
            if value:
                return value, TOOL_ENV
        return None, None

    def source(self, name: str) -> str | None:
        return self.lookup(name)[1]

    def names(self) -> list[str]:
        return sorted(set(self.config_values) | set(self.file_values))

    @property
    def described(self) -> str:
        if self.env_file is not None:
            return str(self.env_file)
        return TOOL_ENV


def _resolve_config_values(raw: Mapping[str, str], outer: EnvLookup) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in raw.items():
        if value.startswith("os.environ/"):
            resolved = outer(value[len("os.environ/") :])
            if resolved:
                out[key] = resolved
        else:
            out[key] = value
    return out


def load_proxy_environment(
    env_file: str | Path | None,
    config_path: Path | None,
    config_env: Mapping[str, str] | None,
    fallback: EnvLookup | None,
    *,
    required: bool = False,
) -> ProxyEnvironment:
    """The proxy's environment: ``env_file`` if given, else the compose ``.env`` beside."""
    path: Path | None = Path(env_file) if env_file is not None else None
    if path is not None and not path.is_file():
        if required:
            raise ConfigError(
                "LiteLLM env file not found",
                path=str(path),
                hint="pass the .env or env_file the proxy container reads (--litellm-env-file)",
            )
        path = None
    if path is None and config_path is not None:
        path = find_compose_env(config_path)
    values: dict[str, str] = {}
    if path is not None:
        try:
            raw = dotenv_values(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read LiteLLM env file: {exc}", path=str(path)) from None
        values = {k: v for k, v in raw.items() if v is not None}
        for name, value in values.items():
            if is_secret_name(name) and value:
                redact.register_secret(value)
    env = ProxyEnvironment(file_values=values, env_file=path, fallback=fallback)
    if config_env:
        env.config_values = _resolve_config_values(config_env, env.get)
        for name, value in env.config_values.items():
            if is_secret_name(name) and value:
                redact.register_secret(value)
    return env
