"""Releasing the lease lock ends in bounded time even when the heartbeat's cancellation is
lost inside the driver.

On Python 3.11, ``asyncio.wait_for`` drops a cancellation that arrives just as the awaited
future completes; PyMongo's async send goes through ``wait_for``, so an ``update_one`` that
is cancelled mid-flight returns normally about 2 times in 100 (measured against SecantusDB:
46 of 2000 cancels lost). A heartbeat that loops ``while True`` and a release that awaits it
without a bound then never return: a CI run of the kill -9 test hung 120 s in the final
``rollback`` that way (the 1 s test lease beats every 0.25 s, so a release often lands
mid-update). The driver call below loses the cancellation deterministically.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from layra_migrate import toolstate
from layra_migrate.engine.lock import LOCK_ID, LeaseLock


class _LosesCancel:
    """A lock collection whose ``update_one`` swallows a cancellation, then completes."""

    def __init__(self, coll: Any) -> None:
        self._coll = coll
        self.entered = asyncio.Event()
        self.lost = 0  # one cancellation is lost, as in the race; later ones are honoured

    def __getattr__(self, name: str) -> Any:
        return getattr(self._coll, name)

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        try:
            await asyncio.sleep(0.3)  # the reply being awaited
        except asyncio.CancelledError:
            if self.lost:
                raise
            self.lost += 1  # what 3.11's wait_for does when the write completed meanwhile
        return await self._coll.update_one(*args, **kwargs)


async def test_release_ends_when_the_heartbeat_loses_its_cancellation(
    mongo_uri: str, db_name: str, sync_client: Any
) -> None:
    from pymongo import AsyncMongoClient

    client: Any = AsyncMongoClient(mongo_uri, serverSelectionTimeoutMS=10_000)
    try:
        lock = LeaseLock(client[db_name], "rollback", ttl_s=0.5)  # beats every 0.125 s
        await lock.acquire()
        coll = _LosesCancel(lock.coll)
        lock.coll = coll  # type: ignore[assignment]
        await asyncio.wait_for(coll.entered.wait(), 10)  # the heartbeat is mid-update
        task = lock._task
        assert task is not None
        releasing = asyncio.ensure_future(lock.release())
        done, _ = await asyncio.wait({releasing}, timeout=8)  # no cancel: it could be lost
        if not done:  # before the fix: hung forever; clean up, then fail
            task.cancel()
            await asyncio.wait({releasing}, timeout=5)
            pytest.fail("release() hung on a heartbeat whose cancellation was lost")
        assert coll.lost == 1  # the cancellation really was lost
        await asyncio.wait_for(asyncio.wait({task}), 2)
        assert task.done()  # the heartbeat ended by itself: no task left behind
        assert sync_client[db_name][toolstate.LOCK].find_one({"_id": LOCK_ID}) is None
    finally:
        await client.close()
