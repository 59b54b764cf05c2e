"""Validate a command's --json output against its published schema (docs/schemas/)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"


@cache
def schema(command: str) -> dict[str, Any]:
    return dict(json.loads((SCHEMAS / f"{command}.v1.json").read_text()))


def validate(command: str, data: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``data`` does not match the schema."""
    import jsonschema

    assert data.get("schema") == f"layra-migrate/{command}/v1", data.get("schema")
    validator = jsonschema.Draft202012Validator(schema(command))
    validator.validate(data)
    # strict enough: every field of this real output, renamed, fails validation
    for key in data:
        renamed = {(f"{k}_renamed" if k == key else k): v for k, v in data.items()}
        if key not in schema(command).get("required", []):
            continue
        assert not validator.is_valid(renamed), f"{command}: renaming {key!r} went unnoticed"
