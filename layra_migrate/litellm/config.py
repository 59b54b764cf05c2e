"""Loading LiteLLM's config.yaml: safe YAML only, ``include:`` files merged.

Errors name the file and, where YAML reports it, the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layra_migrate.errors import ConfigError
from layra_migrate.yamlfile import read_yaml

ENV_PREFIX = "os.environ/"


@dataclass(frozen=True)
class Deployment:
    """One ``model_list`` entry."""

    model_name: str
    model: str
    api_base: str | None
    api_key: str | None
    mode: str
    source: str  # file:line where the entry was declared
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LiteLLMConfig:
    path: Path
    deployments: list[Deployment]
    group_aliases: dict[str, str]
    fallbacks: dict[str, list[str]]
    drop_params: bool
    cache: bool
    master_key_ref: str | None
    store_model_in_db: bool
    files: list[Path]

    def groups(self) -> dict[str, list[Deployment]]:
        out: dict[str, list[Deployment]] = {}
        for d in self.deployments:
            out.setdefault(d.model_name, []).append(d)
        return out


def _read_yaml(path: Path) -> Any:
    return read_yaml(
        path,
        what="LiteLLM config",
        missing_hint="pass --litellm-config PATH to LiteLLM's config.yaml",
    )


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if key == "include":
            continue
        if key in base and isinstance(base[key], list) and isinstance(value, list):
            base[key] = base[key] + value
        elif key in base and isinstance(base[key], dict) and isinstance(value, dict):
            merged = dict(value)
            merged.update(base[key])
            base[key] = merged
        elif key not in base:
            base[key] = value


def _load_tree(path: Path, seen: list[Path]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in seen:
        raise ConfigError("include cycle", path=str(path))
    seen.append(resolved)
    data = _read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping", path=str(path))
    includes = data.get("include") or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list):
        raise ConfigError("include: must be a list of file paths", path=str(path))
    for inc in includes:
        inc_path = path.parent / str(inc)
        if not inc_path.is_file():
            raise ConfigError(
                f"include {inc!r} does not exist (looked at {inc_path})",
                path=str(path),
                hint="paths are relative to the including file",
            )
        _merge(data, _load_tree(inc_path, seen))
    return data


def _str_or_none(v: Any) -> str | None:
    return None if v is None else str(v)


def load_config(path: str | Path) -> LiteLLMConfig:
    path = Path(path)
    files: list[Path] = []
    data = _load_tree(path, files)
    model_list = data.get("model_list")
    if not isinstance(model_list, list):
        raise ConfigError(
            "no model_list in config", path=str(path), hint="is this LiteLLM's proxy config.yaml?"
        )
    deployments: list[Deployment] = []
    for i, entry in enumerate(model_list):
        where = f"{path}: model_list[{i}]"
        if not isinstance(entry, dict) or "model_name" not in entry:
            raise ConfigError(f"model_list[{i}] has no model_name", path=str(path))
        params = entry.get("litellm_params") or {}
        if not isinstance(params, dict) or not params.get("model"):
            raise ConfigError(
                f"model_list[{i}] ({entry['model_name']}) has no litellm_params.model",
                path=str(path),
            )
        info = entry.get("model_info") or {}
        mode = str(info.get("mode") or "chat") if isinstance(info, dict) else "chat"
        extra = {k: v for k, v in params.items() if k not in {"model", "api_base", "api_key"}}
        deployments.append(
            Deployment(
                model_name=str(entry["model_name"]),
                model=str(params["model"]),
                api_base=_str_or_none(params.get("api_base") or params.get("base_url")),
                api_key=_str_or_none(params.get("api_key")),
                mode=mode,
                source=where,
                extra={
                    k: v for k, v in extra.items() if k in {"custom_llm_provider", "rpm", "tpm"}
                },
            )
        )
    router = data.get("router_settings") or {}
    settings = data.get("litellm_settings") or {}
    general = data.get("general_settings") or {}
    aliases: dict[str, str] = {}
    raw_alias = router.get("model_group_alias") if isinstance(router, dict) else None
    if isinstance(raw_alias, dict):
        for alias, target in raw_alias.items():
            if isinstance(target, dict):
                target = target.get("model")
            if target:
                aliases[str(alias)] = str(target)
    fallbacks: dict[str, list[str]] = {}
    for source in (router, settings):
        if not isinstance(source, dict):
            continue
        for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
            for item in source.get(key) or []:
                if isinstance(item, dict):
                    for name, fb in item.items():
                        fallbacks.setdefault(str(name), []).extend(
                            [str(f) for f in (fb if isinstance(fb, list) else [fb])]
                        )
        default_fb = source.get("default_fallbacks")
        if default_fb:
            fallbacks.setdefault("*", []).extend([str(f) for f in default_fb])
    return LiteLLMConfig(
        path=path,
        deployments=deployments,
        group_aliases=aliases,
        fallbacks=fallbacks,
        drop_params=bool(isinstance(settings, dict) and settings.get("drop_params")),
        cache=bool(isinstance(settings, dict) and settings.get("cache")),
        master_key_ref=_str_or_none(general.get("master_key"))
        if isinstance(general, dict)
        else None,
        store_model_in_db=bool(isinstance(general, dict) and general.get("store_model_in_db")),
        files=files,
    )


def env_ref(value: str | None) -> str | None:
    """``os.environ/VAR`` -> ``VAR``; anything else -> None."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        return value[len(ENV_PREFIX) :].strip() or None
    return None
