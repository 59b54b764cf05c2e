"""Loading LiteLLM's config.yaml: safe YAML only, ``include:`` files merged as LiteLLM does.

The merge follows LiteLLM 1.110.2's loader (``proxy/common_utils/config_includes.py``),
checked against it by ``tests/test_litellm_oracle.py``:

- includes are read breadth first: the root file's entries in order, then the entries of
  each included file, appended after the ones still pending;
- an entry names a file next to the file that declares it; when that file does not exist
  but one next to the root config does, that one is read (LiteLLM's compatibility rule);
- a file already read is neither read nor merged again (so cycles end, they do not fail);
- a top-level list in an included file (``model_list``) is appended to the merged list;
  any other top-level value (``router_settings``, ``litellm_settings``...) *replaces*
  the merged one as a whole: an included file wins over the main file.

Errors name the file and, where YAML reports it, the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layra_migrate.errors import ConfigError
from layra_migrate.yamlfile import read_yaml

ENV_PREFIX = "os.environ/"
INCLUDE_KEY = "include"


@dataclass(frozen=True)
class Deployment:
    """One ``model_list`` entry."""

    model_name: str
    model: str
    api_base: str | None
    api_key: str | None
    mode: str
    source: str  # file: model_list[i] where the entry was declared
    extra: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # the whole litellm_params

    @property
    def custom_llm_provider(self) -> str | None:
        value = self.params.get("custom_llm_provider")
        return str(value) if value else None


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
    router_settings: dict[str, Any] = field(default_factory=dict)
    litellm_settings: dict[str, Any] = field(default_factory=dict)
    general_settings: dict[str, Any] = field(default_factory=dict)
    # environment_variables: LiteLLM puts these into its own environment at start-up.
    # Values may be secrets: they are looked up, never shown.
    environment_variables: dict[str, str] = field(default_factory=dict)
    # top-level section -> the file whose value LiteLLM uses (an include can replace it)
    section_sources: dict[str, Path] = field(default_factory=dict)

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


def _include_entries(data: dict[str, Any], path: Path) -> list[str]:
    if INCLUDE_KEY not in data:
        return []
    entries = data[INCLUDE_KEY]
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ConfigError(
            "include: must be a list of file paths",
            path=str(path),
            hint="write include: [other.yaml] (LiteLLM refuses anything else too)",
        )
    return list(entries)


def _resolve_include(entry: str, declared_in: Path, root: Path) -> Path:
    declared = (declared_in.parent / entry).resolve()
    root_relative = (root.parent / entry).resolve()
    if declared == root_relative or not root_relative.exists():
        return declared
    if not declared.exists():
        return root_relative
    return declared


def _read_mapping(path: Path) -> dict[str, Any]:
    data = _read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping", path=str(path))
    return data


def _load_tree(root: Path) -> tuple[dict[str, Any], list[Path], dict[str, Path]]:
    """The merged config, the files read (in order) and which file each section came from."""
    root_resolved = root.resolve()
    merged = _read_mapping(root)
    sources: dict[str, Path] = {k: root for k in merged if k != INCLUDE_KEY}
    files = [root_resolved]
    pending = [(e, root_resolved) for e in _include_entries(merged, root)]
    merged = {k: v for k, v in merged.items() if k != INCLUDE_KEY}
    loaded = {root_resolved}
    while pending:
        entry, declared_in = pending.pop(0)
        location = _resolve_include(entry, declared_in, root_resolved)
        if location in loaded:
            continue
        if not location.is_file():
            raise ConfigError(
                f"include {entry!r} does not exist (looked at {location})",
                path=str(declared_in),
                hint="paths are relative to the including file",
            )
        included = _read_mapping(location)
        pending.extend((e, location) for e in _include_entries(included, location))
        for key, value in included.items():
            if key == INCLUDE_KEY:
                continue
            base = merged.get(key)
            if isinstance(base, list) and isinstance(value, list):
                merged[key] = [*base, *value]
            else:
                merged[key] = value
                sources[key] = location
        loaded.add(location)
        files.append(location)
    return merged, files, sources


def _str_or_none(v: Any) -> str | None:
    return None if v is None else str(v)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def load_config(path: str | Path) -> LiteLLMConfig:
    path = Path(path)
    data, files, sources = _load_tree(path)
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
                params=dict(params),
            )
        )
    router = _mapping(data.get("router_settings"))
    settings = _mapping(data.get("litellm_settings"))
    general = _mapping(data.get("general_settings"))
    aliases: dict[str, str] = {}
    raw_alias = router.get("model_group_alias")
    if isinstance(raw_alias, dict):
        for alias, target in raw_alias.items():
            if isinstance(target, dict):
                target = target.get("model")
            if target:
                aliases[str(alias)] = str(target)
    fallbacks: dict[str, list[str]] = {}
    for source in (router, settings):
        for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
            for item in source.get(key) or []:
                if isinstance(item, dict):
                    for name, fb in item.items():
                        fallbacks.setdefault(str(name), []).extend(
                            [str(f) for f in (fb if isinstance(fb, list) else [fb])]
                        )
        default_fb = source.get("default_fallbacks")
        if isinstance(default_fb, list) and default_fb:
            fallbacks.setdefault("*", []).extend([str(f) for f in default_fb])
    env_vars = _mapping(data.get("environment_variables"))
    return LiteLLMConfig(
        path=path,
        deployments=deployments,
        group_aliases=aliases,
        fallbacks=fallbacks,
        drop_params=bool(settings.get("drop_params")),
        cache=bool(settings.get("cache")),
        master_key_ref=_str_or_none(general.get("master_key")),
        store_model_in_db=bool(general.get("store_model_in_db")),
        files=files,
        router_settings=router,
        litellm_settings=settings,
        general_settings=general,
        environment_variables={str(k): str(v) for k, v in env_vars.items() if v is not None},
        section_sources=sources,
    )


def env_ref(value: str | None) -> str | None:
    """``os.environ/VAR`` -> ``VAR``; anything else -> None."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        return value[len(ENV_PREFIX) :].strip() or None
    return None
