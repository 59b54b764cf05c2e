"""Reading LiteLLM's config.yaml and resolving aliases to direct providers."""

from __future__ import annotations

from layra_migrate.litellm.config import LiteLLMConfig, load_config
from layra_migrate.litellm.resolve import Resolution, Target, resolve_name

__all__ = ["LiteLLMConfig", "Resolution", "Target", "load_config", "resolve_name"]
