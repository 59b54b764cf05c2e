"""Dotted paths inside documents, and the canonical hash of field values.

A path is MongoDB's dotted notation (``models.3.model_url``,
``custom_nodes.Summariser 0.data.modelConfig.apiKey``); numeric segments index
arrays. Values are hashed through their BSON encoding, so the hash sees exactly
what the server stores (types, key order, millisecond datetimes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any


class _Missing:
    """The value of a path that does not exist (distinct from ``None``)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


def get_path(doc: Any, path: str) -> Any:
    """The value at ``path`` or :data:`MISSING`."""
    cur = doc
    for seg in path.split("."):
        if isinstance(cur, Mapping):
            if seg not in cur:
                return MISSING
            cur = cur[seg]
        elif isinstance(cur, list) and seg.isdigit():
            i = int(seg)
            if i >= len(cur):
                return MISSING
            cur = cur[i]
        else:
            return MISSING
    return cur


def top_fields(paths: Iterable[str]) -> dict[str, int]:
    """A projection that fetches what the paths need (array indexes cannot be projected)."""
    return {p.split(".", 1)[0]: 1 for p in paths}


def encode_value(value: Any) -> bytes:
    import bson

    if value is MISSING:
        return b"\x00missing"
    return bson.encode({"v": value})


def values_hash(pairs: Iterable[tuple[str, Any]]) -> str:
    """Hash of (path, value) pairs, order-independent over paths."""
    h = hashlib.sha256()
    for path, value in sorted(pairs, key=lambda pv: pv[0]):
        h.update(path.encode("utf-8"))
        h.update(b"\x00")
        h.update(encode_value(value))
        h.update(b"\x01")
    return h.hexdigest()


def same_value(a: Any, b: Any) -> bool:
    """Equality as stored: BSON bytes, so 1 != 1.0 != True and key order counts."""
    return encode_value(a) == encode_value(b)


def cas_filter(doc_id: Any, expected: Mapping[str, Any]) -> dict[str, Any]:
    """A filter that matches the document only while every path still holds its value."""
    # A flat filter led by _id (paths are unique keys), so every server uses the _id index.
    flt: dict[str, Any] = {"_id": doc_id}
    for path, value in expected.items():
        if path == "_id":
            continue
        if value is MISSING:
            flt[path] = {"$exists": False}
        elif value is None:
            flt[path] = {"$type": "null"}
        else:
            flt[path] = {"$eq": value}
    return flt


def set_unset(values: Mapping[str, Any]) -> dict[str, Any]:
    """An update that writes each path (``$unset`` for :data:`MISSING`)."""
    sets = {p: v for p, v in values.items() if v is not MISSING}
    unsets = {p: "" for p, v in values.items() if v is MISSING}
    update: dict[str, Any] = {}
    if sets:
        update["$set"] = sets
    if unsets:
        update["$unset"] = unsets
    return update
