"""Clearing Layra's Redis copies of the model configs a run changed.

Layra caches ``conv_model_config:<conversation_id>`` (15 minutes) and
``model_config:<username>``; after a rewrite or rollback the keys of the
changed documents are deleted, and no other key is touched. Redis is checked
before any MongoDB write, so an unreachable Redis (exit 3) stops the run
while nothing has changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from layra_migrate import redact
from layra_migrate.engine import faultpoints
from layra_migrate.errors import ConfigError, UnreachableError

TIMEOUT_S = 3.0
CHUNK = 500


CACHE_PATTERNS = ("conv_model_config:*", "model_config:*")
SCAN_LIMIT = 200  # SCAN round trips per DB at most while looking for cache keys


@dataclass
class CacheResult:
    url: str | None
    deleted: int = 0  # keys that existed and were deleted
    requested: int = 0
    failed: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def not_cached(self) -> int:
        """Keys of changed documents that Redis did not hold (expired or never read)."""
        return max(0, self.requested - self.deleted - len(self.failed))

    def describe(self) -> str:
        return f"{self.deleted} cached key(s) deleted, {self.not_cached} were not cached"

    def as_dict(self) -> dict[str, Any]:
        return {
            "redis_url": redact.mask_url(self.url) if self.url else None,
            "keys": self.requested,
            "deleted": self.deleted,
            "not_cached": self.not_cached,
            "failed": self.failed,
            "error": self.error,
        }


@dataclass
class CacheDbCheck:
    """Where Layra's cache keys are: the chosen DB and any other DB that holds some."""

    db: int
    keys_here: int  # cache keys seen in the chosen DB (counted up to the scan bound)
    elsewhere: dict[int, int] = field(default_factory=dict)  # other DB -> keys seen

    @property
    def wrong_db(self) -> bool:
        return self.keys_here == 0 and bool(self.elsewhere)

    def problem(self) -> str | None:
        if not self.wrong_db:
            return None
        dbs = ", ".join(f"DB {n} ({k} key(s))" for n, k in sorted(self.elsewhere.items()))
        return (
            f"Redis DB {self.db} holds none of Layra's cached model configs "
            f"(conv_model_config:*, model_config:*), but {dbs} does: wrong Redis DB"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "keys_here": self.keys_here,
            "elsewhere": {str(k): v for k, v in sorted(self.elsewhere.items())},
            "wrong_db": self.wrong_db,
        }


class RedisCache:
    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._client: Any = None

    async def connect(self) -> None:
        """Ping Redis; unreachable -> UnreachableError (exit 3), bad URL -> ConfigError."""
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        shown = redact.mask_url(self.url)
        try:
            self._client = aioredis.Redis.from_url(
                self.url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s
            )
        except ValueError as exc:
            raise ConfigError(
                f"invalid Redis URL {shown}: {redact.scrub(str(exc))}",
                hint="e.g. redis://:PASSWORD@redis:6379/0",
            ) from None
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            await self.close()
            raise UnreachableError(
                f"Redis at {shown} is unreachable ({exc.__class__.__name__}); nothing was written",
                hint="check --redis-url / REDIS_URL, or omit it and clear the cache yourself",
            ) from None

    @property
    def db(self) -> int:
        return int(self._client.connection_pool.connection_kwargs.get("db") or 0)

    async def _count_cache_keys(self, client: Any) -> int:
        seen = 0
        for pattern in CACHE_PATTERNS:
            cursor: int = 0
            for _ in range(SCAN_LIMIT):
                cursor, keys = await client.scan(cursor=cursor, match=pattern, count=1000)
                seen += len(keys)
                if int(cursor) == 0:
                    break
        return seen

    async def check_db(self) -> CacheDbCheck:
        """Count Layra's cache keys in the chosen DB and in every other DB that has keys
        (``INFO keyspace``), so that a wrong DB is caught before any write."""
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        try:
            here = await self._count_cache_keys(self._client)
            check = CacheDbCheck(self.db, here)
            if here:
                return check
            info = await self._client.info("keyspace")
            pool = self._client.connection_pool
            for name in info:
                if not str(name).startswith("db") or int(str(name)[2:]) == self.db:
                    continue
                n = int(str(name)[2:])
                other_pool = aioredis.ConnectionPool(
                    connection_class=pool.connection_class, **{**pool.connection_kwargs, "db": n}
                )
                other = aioredis.Redis(connection_pool=other_pool)
                try:
                    found = await self._count_cache_keys(other)
                finally:
                    await other.aclose()
                    await other_pool.disconnect()
                if found:
                    check.elsewhere[n] = found
            return check
        except (RedisError, OSError) as exc:
            raise UnreachableError(
                f"Redis at {redact.mask_url(self.url)} failed while looking for cache keys "
                f"({exc.__class__.__name__}); nothing was written"
            ) from None

    async def delete(self, keys: Iterable[str]) -> CacheResult:
        from redis.exceptions import RedisError

        result = CacheResult(self.url)
        todo = sorted(set(keys))
        result.requested = len(todo)
        for i in range(0, len(todo), CHUNK):
            chunk = todo[i : i + CHUNK]
            try:
                result.deleted += int(await self._client.delete(*chunk))
            except (RedisError, OSError) as exc:
                result.failed.extend(chunk)
                result.error = redact.scrub(f"{exc.__class__.__name__}: {exc}")
        return result

    async def close(self) -> None:
        if self._client is not None:
            try:
                await self._client.aclose()
            except Exception:  # noqa: BLE001
                pass
            self._client = None


@dataclass
class CacheGate:
    """Redis as the run will use it: connected, and checked for the right DB."""

    url: str | None
    cache: RedisCache | None = None
    check: CacheDbCheck | None = None
    unreachable: UnreachableError | None = None

    @property
    def wrong_db(self) -> str | None:
        return self.check.problem() if self.check is not None else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "redis_url": redact.mask_url(self.url) if self.url else None,
            "check": self.check.as_dict() if self.check else None,
            "unreachable": self.unreachable.message if self.unreachable else None,
        }

    async def close(self) -> None:
        if self.cache is not None:
            await self.cache.close()


async def open_checked(url: str | None, timeout_s: float = TIMEOUT_S) -> CacheGate:
    """Connect and look for Layra's cache keys, the same way for a dry run and a real
    run. An unreachable Redis is returned (the dry run lists it; the real run raises it);
    a bad URL raises ConfigError."""
    gate = CacheGate(url)
    if not url:
        return gate
    cache = RedisCache(url, timeout_s)
    try:
        await cache.connect()
        gate.check = await cache.check_db()
    except UnreachableError as exc:
        await cache.close()
        gate.unreachable = exc
        return gate
    gate.cache = cache
    return gate


UP = "up"
DOWN = "down"


def _uncleared_filter(migration: str, direction: str) -> dict[str, Any]:
    """Journal entries of one migration whose documents' Redis keys have not been cleared
    since the documents last changed in this direction (``up``: written by a rewrite;
    ``down``: restored by a rollback), in this run or in an interrupted earlier one."""
    from layra_migrate.engine.journal import EntryState, id_range

    states = [EntryState.WRITTEN, EntryState.APPLIED] if direction == UP else [EntryState.RESTORED]
    return {
        "_id": id_range(migration),
        "state": {"$in": states},
        "cache_keys.0": {"$exists": True},
        "cache_cleared": {"$ne": direction},
    }


async def clear_journaled(
    db: Any, cache: RedisCache, migrations: Iterable[str], direction: str, extra: Iterable[str] = ()
) -> CacheResult:
    """Delete the cache keys of every document the journal says changed in ``direction``
    and whose keys were not cleared yet (an interrupted run's too: a kill -9 or Ctrl-C
    loses the in-memory list, the journal keeps it), then mark those entries cleared."""
    from layra_migrate import toolstate

    await faultpoints.pause(faultpoints.CACHE_CLEAR)
    journal = db[toolstate.JOURNAL]
    keys: set[str] = set(extra)
    filters = [_uncleared_filter(m, direction) for m in migrations]
    for flt in filters:
        async for e in journal.find(flt, {"cache_keys": 1}):
            keys.update(e.get("cache_keys") or [])
    result = await cache.delete(keys)
    if not result.failed:
        for flt in filters:
            await journal.update_many(flt, {"$set": {"cache_cleared": direction}})
    return result
