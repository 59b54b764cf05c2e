"""Pause points for fault-injection tests, off unless an environment variable names one.

``LAYRA_MIGRATE_TEST_PAUSE=<point>=<folder>`` makes the process stop at ``<point>``:
it creates ``<folder>/<point>.reached`` and waits until ``<folder>/<point>.go`` exists
(at most :data:`MAX_WAIT_S`, then it goes on). A test can then break something (stop
Redis, kill the process) at exactly that point instead of racing the run's speed.
Points: ``cache-clear`` (every MongoDB write of a rewrite or rollback is done, the Redis
cache clear is next).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

ENV = "LAYRA_MIGRATE_TEST_PAUSE"
MAX_WAIT_S = 300.0
CACHE_CLEAR = "cache-clear"


async def pause(point: str) -> None:
    """Wait at ``point`` when the environment asks for it; otherwise return at once."""
    spec = os.environ.get(ENV, "")
    name, sep, folder = spec.partition("=")
    if not sep or name != point or not folder:
        return
    where = Path(folder)
    (where / f"{point}.reached").touch()
    deadline = time.monotonic() + MAX_WAIT_S
    while not (where / f"{point}.go").exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
