"""Regenerate layra_migrate/litellm/litellm_catalog.json from the pinned LiteLLM (extra `oracle`).

The tool never imports LiteLLM at run time. What it needs from LiteLLM's bundled model map
(which provider a bare model name means, the routing rules for unmapped names, and the
``-latest`` aliases LiteLLM rewrites to a concrete model id) is derived here, by asking
LiteLLM's own ``get_llm_provider`` for every bare name in its map, and vendored as data.
``tests/test_litellm_oracle.py`` checks the vendored table against LiteLLM again.

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python scripts/gen_litellm_catalog.py
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
from litellm.litellm_core_utils.model_latest_aliases import get_model_latest_aliases  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "layra_migrate" / "litellm" / "litellm_catalog.json"


def main() -> None:
    bare: dict[str, str] = {}
    for name in sorted(litellm.model_cost):
        if "/" in name or name == "sample_spec":
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                _model, provider, _key, _base = litellm.get_llm_provider(name)
            except Exception:  # noqa: BLE001 - LiteLLM cannot infer it: not in the table
                continue
        bare[name] = provider
    # the routing rules are stripped from litellm.model_cost; read the bundled map itself
    bundled = Path(litellm.__file__).parent / "model_prices_and_context_window_backup.json"
    rules_src = (
        json.loads(bundled.read_text(encoding="utf-8")).get("fallback_generalizations") or {}
    )
    raw_rules = rules_src.get("rules", []) if isinstance(rules_src, dict) else []
    rules = [
        [r["pattern"], r["model_info"]["litellm_provider"]]
        for r in raw_rules
        if isinstance(r.get("model_info"), dict)
        and set(r["model_info"]) == {"litellm_provider"}
        and "extends" not in r
    ]
    aliases = {p: dict(v) for p, v in get_model_latest_aliases().items()}
    body = {
        "litellm_version": litellm._version.version if hasattr(litellm, "_version") else None,
        "bare_names": bare,
        "routing_rules": rules,
        "latest_aliases": aliases,
    }
    OUT.write_text(json.dumps(body, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(bare)} bare names, {len(rules)} routing rules")


if __name__ == "__main__":
    main()
