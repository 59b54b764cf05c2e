"""The read-only audit: where every model configuration points.

All counting happens in server-side aggregation pipelines; Python only sees
small grouped results (distinct URL/name pairs, per-name counts), so the audit
of 100k references is bound by the server, not by this process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from layra_migrate.litellm.proxy_env import ProxyEnvironment, load_proxy_environment
from layra_migrate.litellm.resolve import Resolution, resolve_name
from layra_migrate.locations import (
    LOCATION_NAMES,
    LOCATIONS,
    MODEL_CONFIG,
    WORKFLOWS,
)
from layra_migrate.progress import NullProgress, Progress
from layra_migrate.proxy import ProxySet, normalise_url

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from layra_migrate.litellm.config import LiteLLMConfig
    from layra_migrate.names import Duplicate
    from layra_migrate.settings import Environment

T = TypeVar("T")

SCHEMA = "layra-migrate/audit/v1"
NO_NAME = "(no model name)"


@dataclass
class LocationCounts:
    documents: int = 0
    references: int = 0
    via_proxy: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "documents": self.documents,
            "references": self.references,
            "via_proxy": self.via_proxy,
        }


@dataclass
class ModelUsage:
    model_name: str
    via_proxy: int = 0
    users: int = 0
    soft_deleted: int = 0
    by_location: dict[str, int] = field(default_factory=dict)
    resolution: Resolution | None = None
    api_key_present: bool | None = None

    @property
    def blocking(self) -> bool:
        if self.resolution is None or not self.resolution.resolved:
            return True
        target = self.resolution.target
        assert target is not None
        return target.key_required and not self.api_key_present

    def resolution_dict(self) -> dict[str, Any]:
        r = self.resolution
        out: dict[str, Any] = {
            "status": r.status if r else "unresolved",
            "reason": (r.reason if r else "no LiteLLM config given (--litellm-config)"),
            "reason_code": (r.reason_code if r else "no_config"),
            "provider": None,
            "base_url": None,
            "model": None,
            "api_key_env": None,
            "api_key_present": None,
            "notes": list(r.notes) if r else [],  # always present, empty when none
        }
        if r and r.target:
            out.update(r.target.as_dict())
            out["api_key_present"] = bool(self.api_key_present)
            if r.target.key_required and not self.api_key_present:
                out["reason"] = f"key variable {r.target.api_key_env} is not set"
                out["reason_code"] = "key_missing"
        if r:
            out["route"] = r.route
            # what the proxy did for this name that the direct call will not
            out["lost_behaviours"] = [b.as_dict() for b in r.lost_behaviours]
            if r.sources:
                out["sources"] = dict(r.sources)
            if r.choices:
                out["choices"] = [c.as_dict() for c in r.choices]
        return out


@dataclass
class Anomaly:
    kind: str
    location: str
    count: int
    detail: str = ""
    paths: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "location": self.location, "count": self.count}
        if self.detail:
            d["detail"] = self.detail
        if self.paths:
            d["paths"] = self.paths
        return d


@dataclass(frozen=True)
class Unrecognised:
    """A config-shaped object the four-place walk does not recognise."""

    location: str
    collection: str
    doc_id: Any
    path: str
    model_name: str
    via_proxy: bool

    def where(self) -> str:
        return f"{self.collection} _id={self.doc_id} {self.path}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "collection": self.collection,
            "doc_id": str(self.doc_id),
            "path": self.path,
            "model_name": self.model_name,
            "via_proxy": self.via_proxy,
        }


MAX_LISTED_PATHS = 50


@dataclass
class AuditReport:
    database: str
    proxy: ProxySet
    locations: dict[str, LocationCounts]
    models: list[ModelUsage]
    anomalies: list[Anomaly]
    proxy_url_spellings: dict[str, int]
    config_path: str | None
    config_notes: list[str]
    unrecognised: list[Unrecognised] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)  # Layra's unique-name rule

    @property
    def via_proxy(self) -> int:
        return sum(c.via_proxy for c in self.locations.values())

    @property
    def unrecognised_via_proxy(self) -> int:
        """Config-shaped objects outside the four places that point at the proxy: the
        rewrite cannot migrate them, and the decommission interlock counts them."""
        return sum(1 for u in self.unrecognised if u.via_proxy)

    @property
    def blocking(self) -> int:
        blocked = {m.model_name for m in self.models if m.blocking}
        return sum(m.via_proxy for m in self.models if m.blocking) + sum(
            1 for d in self.duplicates if d.resolution == "blocking" and d.model_name not in blocked
        )

    def model(self, name: str) -> ModelUsage | None:
        return next((m for m in self.models if m.model_name == name), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "database": self.database,
            "proxy_urls": list(self.proxy.urls),
            "litellm_config": self.config_path,
            "locations": {k: v.as_dict() for k, v in self.locations.items()},
            "proxy_url_spellings": self.proxy_url_spellings,
            "models": [
                {
                    "model_name": m.model_name,
                    "via_proxy": m.via_proxy,
                    "users": m.users,
                    "soft_deleted": m.soft_deleted,
                    "by_location": m.by_location,
                    "resolution": m.resolution_dict(),
                }
                for m in self.models
            ],
            "anomalies": [a.as_dict() for a in self.anomalies],
            "unrecognised_configs": [u.as_dict() for u in self.unrecognised],
            "duplicates": [d.as_dict() for d in self.duplicates],
            "unrecognised_via_proxy": self.unrecognised_via_proxy,
            "notes": self.config_notes,
            "via_proxy": self.via_proxy,
            "blocking": self.blocking,
        }


async def _aggregate(
    db: AsyncDatabase[dict[str, Any]], coll: str, pipeline: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    cursor = await db[coll].aggregate(pipeline, allowDiskUse=True)
    return await cursor.to_list()


async def _count(db: AsyncDatabase[dict[str, Any]], coll: str, flt: dict[str, Any]) -> int:
    return int(await db[coll].count_documents(flt))


async def url_name_counts(db: AsyncDatabase[dict[str, Any]], location: str) -> list[dict[str, Any]]:
    """Per (raw url, url type, model name): reference and soft-deleted counts."""
    loc = LOCATIONS[location]
    pipeline = loc.reference_pipeline() + [
        {
            "$group": {
                "_id": {"url": "$url", "t": {"$type": "$url"}, "name": "$name"},
                "n": {"$sum": 1},
                "deleted": {"$sum": {"$cond": [{"$eq": ["$deleted", True]}, 1, 0]}},
            }
        },
    ]
    return await _aggregate(db, loc.collection, pipeline)


async def proxied_users(db: AsyncDatabase[dict[str, Any]], raw_urls: list[Any]) -> dict[str, int]:
    """Distinct users per proxied model name across all four places (two $group stages)."""
    if not raw_urls:
        return {}

    def branch(location: str) -> list[dict[str, Any]]:
        return LOCATIONS[location].reference_pipeline() + [
            {"$match": {"url": {"$in": raw_urls}}},
            {"$project": {"name": 1, "user": 1}},
        ]

    first = LOCATION_NAMES[0]
    pipeline: list[dict[str, Any]] = branch(first)
    for other in LOCATION_NAMES[1:]:
        pipeline.append(
            {"$unionWith": {"coll": LOCATIONS[other].collection, "pipeline": branch(other)}}
        )
    pipeline += [
        {"$group": {"_id": {"name": "$name", "user": "$user"}}},
        {"$group": {"_id": "$_id.name", "users": {"$sum": 1}}},
    ]
    rows = await _aggregate(db, LOCATIONS[first].collection, pipeline)
    return {_name(r["_id"]): int(r["users"]) for r in rows}


def _name(value: Any) -> str:
    if value is None or value == "":
        return NO_NAME
    return str(value)


async def _anomalies(db: AsyncDatabase[dict[str, Any]]) -> list[Anomaly]:
    mc = LOCATIONS[MODEL_CONFIG].collection
    wf = LOCATIONS[WORKFLOWS].collection
    queries = {
        "unknown_document_shape": _count(db, mc, {"models": {"$not": {"$type": "array"}}}),
        "legacy_model_list": _count(db, mc, {"model_list": {"$exists": True}}),
        "empty_models": _count(db, mc, {"models": {"$size": 0}}),
        "dangling_selected_model": _aggregate(
            db,
            mc,
            [
                {
                    "$match": {
                        "models": {"$type": "array"},
                        "selected_model": {"$type": "string", "$nin": [""]},
                    }
                },
                {
                    "$project": {
                        "d": {
                            "$not": [
                                {
                                    "$in": [
                                        "$selected_model",
                                        {"$map": {"input": "$models", "in": "$$this.model_id"}},
                                    ]
                                }
                            ]
                        }
                    }
                },
                {"$match": {"d": True}},
                {"$count": "n"},
            ],
        ),
        "missing_field": _aggregate(
            db,
            mc,
            [
                {"$match": {"models": {"$type": "array"}}},
                {"$unwind": "$models"},
                {"$match": {"models.score_threshold": {"$exists": False}}},
                {"$count": "n"},
            ],
        ),
        "missing_model_config": _aggregate(
            db,
            wf,
            [
                {"$match": {"nodes": {"$type": "array"}}},
                {"$unwind": "$nodes"},
                {
                    "$match": {
                        "$or": [{"nodes.data.nodeType": "vlm"}, {"nodes.type": "vlm"}],
                        "nodes.data.modelConfig": {"$not": {"$type": "object"}},
                    }
                },
                {"$count": "n"},
            ],
        ),
        "soft_deleted_documents": _count(db, mc, {"is_delete": True}),
    }
    values = await asyncio.gather(*queries.values())
    out: list[Anomaly] = []
    details = {
        "unknown_document_shape": "documents without a models[] array (e.g. {username, model_id, "
        "model_list}); reported, never rewritten",
        "legacy_model_list": "documents with the wrong model_list shape "
        "written by an earlier script",
        "empty_models": "users with models: []",
        "dangling_selected_model": "selected_model names a model_id that no longer exists",
        "missing_field": "model entries without score_threshold (written before mid-2025)",
        "missing_model_config": "vlm workflow nodes without data.modelConfig",
        "soft_deleted_documents": "is_delete: true documents; they still hold keys",
    }
    for kind, value in zip(queries, values, strict=True):
        rows = value if isinstance(value, list) else None
        n = rows[0]["n"] if rows else (value if isinstance(value, int) else 0)
        if n:
            location = WORKFLOWS if kind == "missing_model_config" else MODEL_CONFIG
            out.append(Anomaly(kind, location, int(n), details[kind]))
    return out


async def scan_unrecognised(
    db: AsyncDatabase[dict[str, Any]], proxy: ProxySet, batch_size: int = 500
) -> list[Unrecognised]:
    """Walk every document of the four places in Python for config-shaped objects (a model
    URL field plus a model name or key field) that the places' own walk does not return:
    nodes nested deeper than the search depth, copies in fields no place describes, the
    legacy ``model_list`` shape. Reported with their paths; never rewritten."""
    from layra_migrate.locations import read_field, unrecognised_configs

    out: list[Unrecognised] = []

    from bson import decode
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    raw_codec: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument)

    async def one(name: str) -> None:
        loc = LOCATIONS[name]
        coll: Any = db.get_collection(loc.collection, codec_options=raw_codec)
        async for raw in coll.find({}, batch_size=batch_size):
            doc = decode(raw.raw)
            for path, cfg in unrecognised_configs(name, doc, raw.raw):
                url = read_field(cfg, "model_url")
                out.append(
                    Unrecognised(
                        name,
                        loc.collection,
                        doc.get("_id"),
                        path,
                        _name(read_field(cfg, "model_name")),
                        bool(proxy.matches(url)),
                    )
                )

    await asyncio.gather(*(one(n) for n in LOCATION_NAMES))
    out.sort(key=lambda u: (u.location, str(u.doc_id), u.path))
    return out


def _unrecognised_anomalies(found: list[Unrecognised]) -> list[Anomaly]:
    out: list[Anomaly] = []
    for name in LOCATION_NAMES:
        here = [u for u in found if u.location == name]
        if not here:
            continue
        proxied = sum(1 for u in here if u.via_proxy)
        out.append(
            Anomaly(
                "unrecognised_model_config",
                name,
                len(here),
                f"objects shaped like a model configuration outside the place's known paths "
                f"({proxied} point at the proxy): never rewritten; the decommission interlock "
                f"refuses while any points at the proxy",
                [
                    u.where() + (" (via proxy)" if u.via_proxy else "")
                    for u in here[:MAX_LISTED_PATHS]
                ],
            )
        )
    return out


async def run_audit(
    db: AsyncDatabase[dict[str, Any]],
    proxy: ProxySet,
    config: LiteLLMConfig | None,
    env: Environment,
    proxy_env: ProxyEnvironment | None = None,
    progress: Progress | None = None,
) -> AuditReport:
    """Count, classify and resolve every model configuration. Writes nothing.

    ``proxy_env``: the LiteLLM proxy's own environment (``--litellm-env-file``); without
    it the tool's environment stands in for it. ``progress`` hears of each server-side
    query as it completes (task ``audit``)."""
    names = list(LOCATION_NAMES)
    meter: Progress = progress or NullProgress()
    task = "audit"
    meter.start(task, 2 * len(names) + 3)

    async def counted(aw: Awaitable[T]) -> T:
        value = await aw
        meter.advance(task)
        return value

    doc_counts, url_rows = await asyncio.gather(
        asyncio.gather(*(counted(_count(db, LOCATIONS[n].collection, {})) for n in names)),
        asyncio.gather(*(counted(url_name_counts(db, n)) for n in names)),
    )
    locations: dict[str, LocationCounts] = {}
    models: dict[str, ModelUsage] = {}
    anomalies: list[Anomaly] = []
    proxied_raw: list[Any] = []
    spellings: dict[str, int] = {}
    for name, docs, rows in zip(names, doc_counts, url_rows, strict=True):
        counts = LocationCounts(documents=int(docs))
        missing_url = 0
        invalid_url = 0
        for row in rows:
            key = row["_id"]
            url = key.get("url")
            n = int(row["n"])
            counts.references += n
            if url is None or (isinstance(url, str) and not url.strip()):
                missing_url += n
                continue
            if normalise_url(url) is None:
                invalid_url += n
                continue
            if not proxy.matches(url):
                continue
            counts.via_proxy += n
            if url not in proxied_raw:
                proxied_raw.append(url)
            spellings[str(url)] = spellings.get(str(url), 0) + n
            model = models.setdefault(_name(key.get("name")), ModelUsage(_name(key.get("name"))))
            model.via_proxy += n
            model.soft_deleted += int(row.get("deleted", 0))
            model.by_location[name] = model.by_location.get(name, 0) + n
        locations[name] = counts
        if missing_url:
            anomalies.append(
                Anomaly(
                    "missing_model_url",
                    name,
                    missing_url,
                    "model_url is empty or null; the current app needs a full URL",
                )
            )
        if invalid_url:
            anomalies.append(
                Anomaly("invalid_model_url", name, invalid_url, "model_url is not an http(s) URL")
            )
    users, extra, unrecognised = await asyncio.gather(
        counted(proxied_users(db, proxied_raw)),
        counted(_anomalies(db)),
        counted(scan_unrecognised(db, proxy)),
    )
    meter.finish(task)
    anomalies.extend(extra)
    anomalies.extend(_unrecognised_anomalies(unrecognised))
    notes: list[str] = []
    if config is not None:
        if config.store_model_in_db:
            notes.append(
                "store_model_in_db is on: models added in LiteLLM's UI live in Postgres "
                "(LiteLLM_ProxyModelTable) and are not in config.yaml"
            )
        if proxy_env is None:
            proxy_env = load_proxy_environment(None, None, config.environment_variables, env.get)
        if proxy_env.env_file is None:
            notes.append(
                "no LiteLLM env file (--litellm-env-file, or a .env beside its compose file): "
                "your environment stood in for the proxy's when reading <PROVIDER>_API_BASE "
                "and key variables; the proxy may see other values"
            )
        else:
            notes.append(f"LiteLLM's environment read from {proxy_env.env_file} (names only)")
    for model in models.values():
        model.users = users.get(model.model_name, 0)
        if model.model_name == NO_NAME:
            model.resolution = Resolution(
                NO_NAME, None, "no_model_name", "the reference has no model name"
            )
        elif config is not None:
            assert proxy_env is not None
            model.resolution = resolve_name(
                config,
                model.model_name,
                env.get,
                proxy_lookup=proxy_env.lookup,
                ref_lookup=proxy_env.process_lookup,
            )
            notes.extend(n for n in model.resolution.notes if n not in notes)
        if model.resolution and model.resolution.target:
            var = model.resolution.target.api_key_env
            model.api_key_present = bool(var and env.get(var))
    if any(m.soft_deleted for m in models.values()):
        anomalies.append(
            Anomaly(
                "soft_deleted_via_proxy",
                "all",
                sum(m.soft_deleted for m in models.values()),
                "proxied references inside is_delete documents; they are rewritten too",
            )
        )
    ordered = sorted(models.values(), key=lambda m: (-m.via_proxy, m.model_name))
    report = AuditReport(
        database=db.name,
        proxy=proxy,
        locations=locations,
        models=ordered,
        anomalies=anomalies,
        proxy_url_spellings=spellings,
        config_path=str(config.path) if config else None,
        config_notes=notes,
        unrecognised=unrecognised,
    )
    if config is not None:
        # Layra's unique-name rule against the renames the resolution implies
        from layra_migrate.names import find_duplicates
        from layra_migrate.plan import plan_from_report

        report.duplicates, _ = await find_duplicates(db, plan_from_report(report))
    return report
