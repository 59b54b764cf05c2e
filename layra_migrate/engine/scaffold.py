"""``layra-migrate new NAME``: the next migration file, with the context API documented."""

from __future__ import annotations

from pathlib import Path

from layra_migrate.engine.discovery import next_file
from layra_migrate.errors import ConfigError

TEMPLATE = '''"""{title}

The context (``ctx``) is typed: ``up`` gets a MigrationAPI, ``down`` a DownAPI
(layra_migrate/engine/api.py); ``mypy --strict`` checks a migration against them.
set_fields is the only way a migration writes:

  ctx.db                 the application database (pymongo AsyncDatabase): read freely
  ctx.plan               the reviewed plan: ctx.plan.proxy.matches(url), ctx.plan.target(name)
  ctx.keys               key values: ctx.keys.for_target(ctx.plan.target(name))
  ctx.logger             a logging.Logger (secrets are masked on output)
  ctx.dry_run            True under --dry-run: set_fields records the diff, writes nothing
  ctx.skipped            documents left alone because they changed while migrating
  ctx.MISSING            the value of an absent field (in expect, or to remove a field)

  async for doc in ctx.stream(collection, filter, projection):
      ...                # documents in _id order, in batches (bounded memory), with progress

  await ctx.set_fields(collection, doc["_id"],
                       {{"models.0.model_url": "https://api.example.com/v1"}},
                       expect={{"models.0.model_url": doc["models"][0]["model_url"]}},
                       cache_keys=["model_config:" + doc["username"]])

Field names: a model configuration spells its keys in snake_case or camelCase; use
layra_migrate.locations (Location.references(doc), Reference.field_path(logical))
rather than spelling keys yourself, so you change the copy the app reads.

set_fields journals the before-image of exactly those paths (and a hash of the
new values) before writing, and writes only while the document still holds the
``expect`` values. Rollback replays the journal, so ``down`` is optional: write
one only for changes the journal cannot see (it gets no plan and no keys).
Never replace whole documents. A migration must be safe to run again after an
interruption: compute changes from the data (as 0001 does), not from counters.
"""

from __future__ import annotations

from layra_migrate.engine.api import MigrationAPI

id = "{stem}"
description = "{title}"


async def up(ctx: MigrationAPI) -> None:
    async for doc in ctx.stream("collection_name", {{}}, {{"field": 1}}):
        pass  # compute new values, then: await ctx.set_fields(...)


# Optional: runs before the journal replay on rollback; it gets no plan and no keys
# (from layra_migrate.engine.api import DownAPI).
# async def down(ctx: DownAPI) -> None:
#     ...
'''


def create(directory: Path, name: str) -> Path:
    path = next_file(directory, name)
    title = name.strip().replace('"', "'") or path.stem
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as fh:
            fh.write(TEMPLATE.format(title=title, stem=path.stem))
    except FileExistsError:
        raise ConfigError("migration file already exists", path=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot write migration file: {exc.strerror or exc}",
                          path=str(path)) from None
    return path
