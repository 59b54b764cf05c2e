"""The reversibility proof on a scratch copy (``layra-migrate check``).

Copy the application collections to a scratch database, fingerprint them,
then: up -> fingerprint A; down -> must equal the original; up -> must equal
A (idempotence); up once more, ignoring the ledger -> must change nothing.
The real collections are only read. The scratch database is dropped.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from layra_migrate import toolstate
from layra_migrate.engine.discovery import Migration
from layra_migrate.engine.runner import RunOptions, Store, apply, rollback
from layra_migrate.errors import UsageError, VerificationFailed
from layra_migrate.progress import NullProgress, Progress

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from layra_migrate.plan import KeyValues, Plan

COPY_TASK = "check: copy"
FINGERPRINT_TASK = "check: fingerprint"

Fingerprint = dict[str, dict[bytes, str]]  # collection -> encoded _id -> sha256 of the raw BSON


def _raw(db: AsyncDatabase[dict[str, Any]], name: str) -> Any:
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    return db.get_collection(name, codec_options=CodecOptions(document_class=RawBSONDocument))


async def app_collections(db: AsyncDatabase[dict[str, Any]]) -> list[str]:
    names = await db.list_collection_names()
    return sorted(
        n for n in names if not toolstate.is_tool_collection(n) and not n.startswith("system.")
    )


async def _total(db: AsyncDatabase[dict[str, Any]], names: Sequence[str]) -> int:
    return sum([await db[n].estimated_document_count() for n in names])


async def fingerprint(
    db: AsyncDatabase[dict[str, Any]],
    collections: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> Fingerprint:
    """Content hash of every document, byte for byte (types, key order, values)."""
    from bson import encode

    names = list(collections) if collections is not None else await app_collections(db)
    meter: Progress = progress or NullProgress()
    meter.start(FINGERPRINT_TASK, await _total(db, names) if progress else None)
    out: Fingerprint = {}
    for name in names:
        hashes: dict[bytes, str] = {}
        async for doc in _raw(db, name).find({}):
            hashes[encode({"_id": doc["_id"]})] = hashlib.sha256(doc.raw).hexdigest()
            meter.advance(FINGERPRINT_TASK)
        out[name] = hashes
    meter.finish(FINGERPRINT_TASK)
    return out


def first_difference(a: Fingerprint, b: Fingerprint) -> str | None:
    from bson import decode

    for name in sorted(set(a) | set(b)):
        da, db_ = a.get(name, {}), b.get(name, {})
        for key in sorted(set(da) | set(db_)):
            if da.get(key) != db_.get(key):
                doc_id = decode(key)["_id"]
                what = (
                    "missing" if key not in db_ else "added" if key not in da else "content differs"
                )
                return f"{name} _id={doc_id!r} ({what})"
    return None


def digest(fp: Fingerprint) -> str:
    h = hashlib.sha256()
    for name in sorted(fp):
        h.update(name.encode())
        for key in sorted(fp[name]):
            h.update(key)
            h.update(fp[name][key].encode())
    return h.hexdigest()


async def copy_collections(
    src: AsyncDatabase[dict[str, Any]],
    dst: AsyncDatabase[dict[str, Any]],
    names: Sequence[str],
    batch: int = 1000,
    progress: Progress | None = None,
) -> int:
    meter: Progress = progress or NullProgress()
    meter.start(COPY_TASK, await _total(src, names) if progress else None)
    n = 0
    for name in names:
        buf: list[Any] = []
        async for doc in _raw(src, name).find({}, batch_size=batch):
            buf.append(doc)
            if len(buf) >= batch:
                await _raw(dst, name).insert_many(buf, ordered=False)
                n += len(buf)
                meter.advance(COPY_TASK, len(buf))
                buf = []
        if buf:
            await _raw(dst, name).insert_many(buf, ordered=False)
            n += len(buf)
            meter.advance(COPY_TASK, len(buf))
        if name not in await dst.list_collection_names():
            await dst.create_collection(name)
    meter.finish(COPY_TASK)
    return n


@dataclass
class CheckStep:
    name: str
    ok: bool
    detail: str = ""
    documents: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "documents": self.documents,
        }


@dataclass
class CheckResult:
    scratch_db: str
    copied: int
    original: str = ""
    steps: list[CheckStep] = field(default_factory=list)
    first_difference: str | None = None

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps) and bool(self.steps)


async def run_check(
    client: Any,
    source: AsyncDatabase[dict[str, Any]],
    migrations: Sequence[Migration],
    *,
    plan: Plan,
    keys: KeyValues,
    options: RunOptions,
    scratch_name: str | None = None,
) -> CheckResult:
    """Raises VerificationFailed (exit 5) naming the first differing document."""
    name = scratch_name or f"{source.name[:40]}_lmcheck_{uuid.uuid4().hex[:8]}"
    if name == source.name:
        raise UsageError("--scratch-db must not be the database being migrated")
    if name in await client.list_database_names():
        scratch_existing = await client[name].list_collection_names()
        if scratch_existing:
            raise UsageError(
                f"scratch database {name!r} already holds collections; refusing to overwrite it",
                hint="pass an unused --scratch-db name",
            )
    scratch = client[name]
    try:
        names = await app_collections(source)
        copied = await copy_collections(source, scratch, names, progress=options.progress)
        result = CheckResult(name, copied)
        store = Store(scratch)
        original = await fingerprint(scratch, names, options.progress)
        result.original = digest(original)
        if original != await fingerprint(source, names, options.progress):
            raise VerificationFailed(
                "the scratch copy differs from the source (was the "
                "database written during the copy?)"
            )

        up1 = await apply(store, migrations, plan=plan, keys=keys, options=options)
        fp_up = await fingerprint(scratch, names, options.progress)
        result.steps.append(
            CheckStep("up", True, f"{up1.documents} document(s) changed", up1.documents)
        )
        down = await rollback(
            store,
            migrations,
            to=migrations[0].id if migrations else None,
            force=False,
            options=options,
        )
        fp_down = await fingerprint(scratch, names, options.progress)
        diff = first_difference(original, fp_down)
        conflicts = down.conflict_count
        result.steps.append(
            CheckStep(
                "down equals original",
                diff is None and not conflicts,
                diff or (f"{conflicts} conflict(s)" if conflicts else ""),
                sum(s.restored for s in down.stats.values()),
            )
        )
        if diff or conflicts:
            result.first_difference = diff
            return result
        up2 = await apply(store, migrations, plan=plan, keys=keys, options=options)
        diff = first_difference(fp_up, await fingerprint(scratch, names, options.progress))
        result.steps.append(
            CheckStep("up again equals first up", diff is None, diff or "", up2.documents)
        )
        if diff:
            result.first_difference = diff
            return result
        before_rerun = await fingerprint(scratch, names, options.progress)
        rerun = await _rerun_all(store, migrations, plan=plan, keys=keys, options=options)
        diff = first_difference(before_rerun, await fingerprint(scratch, names, options.progress))
        ok = diff is None and rerun == 0
        result.steps.append(
            CheckStep(
                "up once more changes nothing",
                ok,
                diff or (f"{rerun} document(s) written" if rerun else ""),
                rerun,
            )
        )
        if diff:
            result.first_difference = diff
        return result
    finally:
        await client.drop_database(name)


async def _rerun_all(
    store: Store,
    migrations: Sequence[Migration],
    *,
    plan: Plan,
    keys: KeyValues,
    options: RunOptions,
) -> int:
    """Run every ``up`` again regardless of the ledger; count the documents it writes."""
    from layra_migrate.engine.context import UpContext
    from layra_migrate.engine.lock import LeaseLock

    written = 0
    async with LeaseLock(store.db, "check", ttl_s=options.lock_ttl_s) as lock:
        for m in migrations:
            ctx = UpContext(
                db=store.db,
                migration=m,
                plan=plan,
                keys=keys,
                dry_run=False,
                progress=options.progress,
                lock=lock,
                run_id="check-rerun",
                run_no=10**9,
                batch_size=options.batch_size,
                stop=options.stop,
            )
            try:
                await m.up(ctx)
                await ctx.flush()
            except BaseException:
                await ctx.settle_inflight()
                raise
            written += ctx.stats.documents
    return written
