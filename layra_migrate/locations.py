"""The four places a Layra model configuration lives, and both key spellings.

This module is the one place that knows collection names, paths and the
snake_case / camelCase field names. The audit's aggregation pipelines and the
Python-side reference extraction used by rewrite and verify are both built
here, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MODEL_CONFIG = "model_config"
CONVERSATIONS = "conversations"
WORKFLOWS = "workflows"
CUSTOM_NODES = "custom_nodes"

LOCATION_NAMES = (MODEL_CONFIG, CONVERSATIONS, WORKFLOWS, CUSTOM_NODES)


@dataclass(frozen=True)
class Spelling:
    model_id: str
    model_name: str
    model_url: str
    api_key: str


SNAKE = Spelling("model_id", "model_name", "model_url", "api_key")
CAMEL = Spelling("modelId", "modelName", "modelURL", "apiKey")


def spelling_of(cfg: dict[str, Any]) -> Spelling:
    """The spelling a copy already uses (camelCase when any camel key is present)."""
    if any(k in cfg for k in (CAMEL.model_url, CAMEL.model_name, CAMEL.api_key, CAMEL.model_id)):
        if not any(k in cfg for k in (SNAKE.model_url, SNAKE.model_name, SNAKE.api_key)):
            return CAMEL
    return SNAKE


def _spellings(logical: str) -> tuple[str, str]:
    """(camelCase key, snake_case key) of a logical field."""
    return str(getattr(CAMEL, logical)), str(getattr(SNAKE, logical))


def field_name(cfg: dict[str, Any], logical: str) -> str:
    """The one field-spelling rule: the key that holds the value :func:`read_field`
    returns (the value the app reads: camelCase when it holds a value, else snake_case
    when present), so a rewrite changes the copy the app uses. A field absent in both
    spellings gets the spelling the copy already uses."""
    camel, snake = _spellings(logical)
    if cfg.get(camel) is not None:
        return camel
    if snake in cfg:
        return snake
    if camel in cfg:
        return camel
    return str(getattr(spelling_of(cfg), logical))


def read_field(cfg: dict[str, Any], logical: str) -> Any:
    """The value the app reads for a logical field (see :func:`field_name`)."""
    return cfg.get(field_name(cfg, logical))


@dataclass(frozen=True)
class Reference:
    """One model configuration inside one document."""

    location: str
    collection: str
    doc_id: Any
    path: str  # dotted path of the config object, e.g. "models.3" or "nodes.0.data.modelConfig"
    username: str | None
    config: dict[str, Any]

    @property
    def model_name(self) -> Any:
        return read_field(self.config, "model_name")

    @property
    def model_url(self) -> Any:
        return read_field(self.config, "model_url")

    @property
    def api_key(self) -> Any:
        return read_field(self.config, "api_key")

    def field_path(self, logical: str) -> str:
        return f"{self.path}.{field_name(self.config, logical)}"


NODE_DEPTH = 8
"""How many levels of ``custom_nodes`` are searched for nodes. Layra saves a node with
``$set custom_nodes.<name>``, so each dot in ``<name>`` adds a level (``gpt-4.1-helper``
lives at ``custom_nodes["gpt-4"]["1-helper"]``). A node nested deeper than this is still
found by the anomaly scan (:func:`config_shaped`), which the decommission interlock counts."""


def is_node(value: Any) -> bool:
    """A saved workflow node (a React Flow node): an object with ``data`` or ``type``."""
    return isinstance(value, dict) and (
        isinstance(value.get("data"), dict) or isinstance(value.get("type"), str)
    )


def custom_node_paths(
    custom: Any, prefix: str = CUSTOM_NODES, depth: int = NODE_DEPTH
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every node under ``custom_nodes`` with its real dotted path (which is the name it
    was saved under: a dotted name nests, and the same dotted path reaches it)."""
    if not isinstance(custom, dict) or depth <= 0:
        return
    for key, value in custom.items():
        if not isinstance(key, str) or "." in key or key.startswith("$") or not key:
            continue  # not addressable by a dotted path (never written by Layra's $set)
        path = f"{prefix}.{key}"
        if is_node(value):
            yield path, value
        elif isinstance(value, dict):
            yield from custom_node_paths(value, path, depth - 1)


def _node_list_expr(expr: str, depth: int) -> dict[str, Any]:
    """Aggregation expression: the nodes under the object ``expr``, at most ``depth`` levels
    down (the server-side twin of :func:`custom_node_paths`)."""
    this = "$$this.v"
    node = {
        "$or": [
            {"$eq": [{"$type": f"{this}.data"}, "object"]},
            {"$eq": [{"$type": f"{this}.type"}, "string"]},
        ]
    }
    deeper: Any = []
    if depth > 1:
        deeper = {
            "$cond": [{"$eq": [{"$type": this}, "object"]}, _node_list_expr(this, depth - 1), []]
        }
    return {
        "$reduce": {
            "input": {"$objectToArray": expr},
            "initialValue": [],
            "in": {"$concatArrays": ["$$value", {"$cond": [node, [this], deeper]}]},
        }
    }


def _cfg_expr(var: str) -> dict[str, Any]:
    """Aggregation fields for a config object held in ``$$var`` or ``$path``."""
    return {
        "name": {"$ifNull": [f"{var}.{CAMEL.model_name}", f"{var}.{SNAKE.model_name}"]},
        "url": {"$ifNull": [f"{var}.{CAMEL.model_url}", f"{var}.{SNAKE.model_url}"]},
        "camel": {
            "$or": [
                {"$ne": [{"$type": f"{var}.{CAMEL.model_url}"}, "missing"]},
                {"$ne": [{"$type": f"{var}.{CAMEL.model_name}"}, "missing"]},
            ]
        },
    }


@dataclass(frozen=True)
class Location:
    name: str
    collection: str
    description: str
    candidate_filter: dict[str, Any]  # documents that can hold a reference

    def reference_pipeline(self) -> list[dict[str, Any]]:
        """Stages that turn documents into one row per reference:
        ``{user, name, url, camel, deleted}``."""
        if self.name == MODEL_CONFIG:
            return [
                {"$match": {"models": {"$type": "array"}}},
                {"$unwind": "$models"},
                {"$match": {"models": {"$type": "object"}}},
                {
                    "$project": {
                        "_id": 0,
                        "user": "$username",
                        "deleted": "$is_delete",
                        **_cfg_expr("$models"),
                    }
                },
            ]
        if self.name == CONVERSATIONS:
            return [
                {"$match": {"model_config": {"$type": "object"}}},
                {
                    "$project": {
                        "_id": 0,
                        "user": "$username",
                        "deleted": "$is_delete",
                        **_cfg_expr("$model_config"),
                    }
                },
            ]
        if self.name == WORKFLOWS:
            return [
                {"$match": {"nodes": {"$type": "array"}}},
                {"$project": {"user": "$username", "deleted": "$is_delete", "nodes": 1}},
                {"$unwind": "$nodes"},
                {"$match": {"nodes.data.modelConfig": {"$type": "object"}}},
                {
                    "$project": {
                        "_id": 0,
                        "user": 1,
                        "deleted": 1,
                        **_cfg_expr("$nodes.data.modelConfig"),
                    }
                },
            ]
        if self.name == CUSTOM_NODES:
            return [
                {"$match": {"custom_nodes": {"$type": "object"}}},
                {
                    "$project": {
                        "user": "$username",
                        "deleted": "$is_delete",
                        "node": _node_list_expr("$custom_nodes", NODE_DEPTH),
                    }
                },
                {"$unwind": "$node"},
                {"$match": {"node.data.modelConfig": {"$type": "object"}}},
                {
                    "$project": {
                        "_id": 0,
                        "user": 1,
                        "deleted": 1,
                        **_cfg_expr("$node.data.modelConfig"),
                    }
                },
            ]
        raise ValueError(self.name)

    def url_pipeline(self) -> list[dict[str, Any]]:
        """Like :meth:`reference_pipeline`, but each row holds only ``{url}`` (the same
        expression): about half the server work, for checks that need only the URLs."""
        stages = self.reference_pipeline()
        last = stages[-1]["$project"]
        stages[-1] = {"$project": {"_id": 0, "url": last["url"]}}
        return stages

    def projection(self) -> dict[str, Any]:
        """Fields a Python-side scan needs (never the whole document)."""
        base = {"username": 1}
        if self.name == MODEL_CONFIG:
            return {**base, "models": 1}
        if self.name == CONVERSATIONS:
            return {**base, "model_config": 1, "conversation_id": 1}
        if self.name == WORKFLOWS:
            return {**base, "nodes": 1}
        return {**base, "custom_nodes": 1}

    def references(self, doc: dict[str, Any]) -> Iterator[Reference]:
        """Every model configuration inside one fetched document, with its path."""
        user = doc.get("username")
        doc_id = doc.get("_id")

        def ref(path: str, cfg: dict[str, Any]) -> Reference:
            return Reference(self.name, self.collection, doc_id, path, user, cfg)

        if self.name == MODEL_CONFIG:
            models = doc.get("models")
            if isinstance(models, list):
                for i, m in enumerate(models):
                    if isinstance(m, dict):
                        yield ref(f"models.{i}", m)
        elif self.name == CONVERSATIONS:
            cfg = doc.get("model_config")
            if isinstance(cfg, dict):
                yield ref("model_config", cfg)
        elif self.name == WORKFLOWS:
            nodes = doc.get("nodes")
            if isinstance(nodes, list):
                for i, node in enumerate(nodes):
                    data = node.get("data") if isinstance(node, dict) else None
                    cfg = data.get("modelConfig") if isinstance(data, dict) else None
                    if isinstance(cfg, dict):
                        yield ref(f"nodes.{i}.data.modelConfig", cfg)
        elif self.name == CUSTOM_NODES:
            for path, node in custom_node_paths(doc.get("custom_nodes")):
                data = node.get("data")
                cfg = data.get("modelConfig") if isinstance(data, dict) else None
                if isinstance(cfg, dict):
                    yield ref(f"{path}.data.modelConfig", cfg)


LOCATIONS: dict[str, Location] = {
    MODEL_CONFIG: Location(
        MODEL_CONFIG,
        "model_config",
        "user model lists (models[])",
        {"models": {"$type": "array"}},
    ),
    CONVERSATIONS: Location(
        CONVERSATIONS,
        "conversations",
        "conversation snapshots (model_config)",
        {"model_config": {"$type": "object"}},
    ),
    WORKFLOWS: Location(
        WORKFLOWS,
        "workflows",
        "workflow nodes (nodes[].data.modelConfig)",
        {"nodes": {"$type": "array"}},
    ),
    CUSTOM_NODES: Location(
        CUSTOM_NODES,
        "nodes",
        "saved custom nodes (custom_nodes.<name>.data.modelConfig, a dotted name nested)",
        {"custom_nodes": {"$type": "object"}},
    ),
}


def redis_keys_for(location: str, doc: dict[str, Any]) -> list[str]:
    """Layra's Redis cache keys that hold a copy of this document's model config."""
    if location == CONVERSATIONS and doc.get("conversation_id"):
        return [f"conv_model_config:{doc['conversation_id']}"]
    if location == MODEL_CONFIG and doc.get("username"):
        return [f"model_config:{doc['username']}"]
    return []


_URL_FIELDS = (SNAKE.model_url, CAMEL.model_url)
_NAME_OR_KEY_FIELDS = (SNAKE.model_name, CAMEL.model_name, SNAKE.api_key, CAMEL.api_key)


def config_shaped(value: Any) -> bool:
    """An object shaped like a model configuration: a model URL field plus a model name or
    key field, in either spelling."""
    return (
        isinstance(value, dict)
        and any(k in value for k in _URL_FIELDS)
        and any(k in value for k in _NAME_OR_KEY_FIELDS)
    )


def config_objects(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every config-shaped object anywhere inside ``value``, with its dotted path (array
    positions as numbers). A config-shaped object is not searched further."""
    if isinstance(value, dict):
        if path and config_shaped(value):
            yield path, value
            return
        for k, v in value.items():
            yield from config_objects(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from config_objects(v, f"{path}.{i}" if path else str(i))


LEGACY_FIELDS: dict[str, tuple[str, ...]] = {MODEL_CONFIG: ("model_list",)}
"""Known shapes the app does not read: the ``{username, model_id, model_list}`` documents an
earlier script wrote. The audit reports them as ``legacy_model_list``; they are neither
rewritten nor counted as unrecognised (retiring the proxy breaks nothing there)."""

_URL_KEYS_BSON = tuple(k.encode() + b"\x00" for k in _URL_FIELDS)


def unrecognised_configs(
    location: str, doc: dict[str, Any], raw: bytes | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Config-shaped objects in a document of one place that the place's walk
    (:meth:`Location.references`) does not return: nothing is ever silently missed.

    With the document's BSON bytes, the full walk is skipped when every URL field name in
    the bytes belongs to a known reference (a config-shaped object needs one): the usual
    case, at the cost of a byte count."""
    refs = list(LOCATIONS[location].references(doc))
    if raw is not None:
        in_bytes = sum(raw.count(k) for k in _URL_KEYS_BSON)
        known_urls = sum(1 for r in refs for k in _URL_FIELDS if k in r.config)
        if in_bytes == known_urls:
            return
    known = {r.path for r in refs}
    legacy = LEGACY_FIELDS.get(location, ())
    for path, cfg in config_objects({k: v for k, v in doc.items() if k != "_id"}):
        if path not in known and path.split(".", 1)[0] not in legacy:
            yield path, cfg
