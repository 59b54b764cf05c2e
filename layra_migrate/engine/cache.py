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
from layra_migrate.errors import ConfigError, UnreachableError

TIMEOUT_S = 3.0
CHUNK = 500


@dataclass
class CacheResult:
    url: str | None
    deleted: int = 0  # keys that existed and were deleted
    requested: int = 0
    failed: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"redis_url": redact.mask_url(self.url) if self.url else None,
                "keys": self.requested, "deleted": self.deleted, "failed": self.failed,
                "error": self.error}


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
                self.url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s)
        except ValueError as exc:
            raise ConfigError(f"invalid Redis URL {shown}: {redact.scrub(str(exc))}",
                              hint="e.g. redis://:PASSWORD@redis:6379/0") from None
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            await self.close()
            raise UnreachableError(
                f"Redis at {shown} is unreachable ({exc.__class__.__name__}); nothing was written",
                hint="check --redis-url / REDIS_URL, or omit it and clear the cache yourself",
            ) from None

    async def delete(self, keys: Iterable[str]) -> CacheResult:
        from redis.exceptions import RedisError

        result = CacheResult(self.url)
        todo = sorted(set(keys))
        result.requested = len(todo)
        for i in range(0, len(todo), CHUNK):
            chunk = todo[i:i + CHUNK]
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
