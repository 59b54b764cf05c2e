"""What LiteLLM's bundled model map says about bare model names, vendored as data.

LiteLLM's router serves a bare name (``gpt-4.1-mini``) through a wildcard route by asking
``litellm.get_llm_provider`` which provider the name means; that answer comes from the
model map bundled with LiteLLM. This tool must not import LiteLLM, so
``litellm_catalog.json`` holds the answers of the pinned LiteLLM (1.110.2) for every bare
name in its map, its routing rules for unmapped names, and the ``-latest`` aliases it
rewrites to a concrete model id. ``scripts/gen_litellm_catalog.py`` regenerates the file;
``tests/test_litellm_oracle.py`` checks it against LiteLLM's own ``get_llm_provider``.

A name the table does not know is not guessed: ``infer_provider`` returns None and the
name stays unresolved with a reason.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

CATALOG_FILE = "litellm_catalog.json"


@cache
def _catalog() -> dict[str, Any]:
    text = resources.files("layra_migrate.litellm").joinpath(CATALOG_FILE).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def _rules() -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple(
        (re.compile(pattern, re.IGNORECASE), provider)
        for pattern, provider in _catalog()["routing_rules"]
    )


def litellm_version() -> str:
    return str(_catalog().get("litellm_version") or "unknown")


def infer_provider(name: str) -> str | None:
    """The provider LiteLLM infers for a bare model name, or None when it cannot.

    Mirrors ``get_llm_provider`` for names without a ``provider/`` prefix: exact names
    from the model map first, then its special spellings (fine-tuned ``ft:gpt-...``,
    ``gpt-image...``), then the map's routing rules (first match wins).
    """
    if not name or "/" in name:
        return None
    exact = _catalog()["bare_names"].get(name)
    if exact:
        return str(exact)
    if "ft:gpt-3.5-turbo" in name or "ft:gpt-4" in name or name.startswith("gpt-image"):
        return "openai"
    for pattern, provider in _rules():
        if pattern.search(name):
            return provider
    return None


def latest_alias_target(provider: str, model_id: str) -> str:
    """The concrete model id LiteLLM sends for a ``-latest`` alias (else ``model_id``)."""
    aliases = _catalog()["latest_aliases"].get(provider) or {}
    target = aliases.get(model_id)
    return str(target) if target else model_id
