"""Reading the YAML files the tool accepts (LiteLLM's config, the plan): safe
loading only, and one-line errors naming the file and, where YAML knows it, the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from layra_migrate.errors import ConfigError


def read_yaml(path: Path, *, what: str, missing_hint: str) -> Any:
    """Parse ``path`` with ``yaml.safe_load``: a file that tries to construct Python
    objects is an invalid file (exit 2), never code that runs."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} not found", path=str(path), hint=missing_hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what}: {exc.__class__.__name__}", path=str(path)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise ConfigError(
            f"invalid {what} YAML: {problem}",
            path=str(path),
            line=mark.line + 1 if mark is not None else None,
            hint="fix the YAML syntax",
        ) from None
