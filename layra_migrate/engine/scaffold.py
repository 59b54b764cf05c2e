"""``layra-migrate new NAME``: the next migration file, with the context API documented.

Where: the operator's project (``./migrations`` of the current directory unless
``--migrations-dir`` says otherwise), never the installed package, whose files a
reinstall replaces (site-packages under pipx). Numbering: the next number after
the highest of the bundled migrations and the project's, so a project file never
shares a number with a bundled one. A project folder is the whole migration set
when it is used (``--migrations-dir``), so a fresh one receives a copy of the
bundled migrations first (same bytes, same checksums: an applied one stays applied).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from layra_migrate.engine.discovery import FILE_PATTERN, default_dir, next_file
from layra_migrate.errors import ConfigError

PROJECT_DIR = Path("migrations")

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
  ctx.progress           report a long step: start(task, total), advance(task, n), finish(task)

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


@dataclass
class Scaffolded:
    path: Path
    copied: list[Path] = field(default_factory=list)  # bundled files copied into a new folder


def _numbered(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if FILE_PATTERN.match(p.name))


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def refuse_package_folder(directory: Path, bundled: Path | None = None) -> None:
    """Exit 2 when ``directory`` is the bundled migrations or inside the installed package."""
    import layra_migrate

    target = directory.expanduser().resolve()
    bundled = (bundled or default_dir()).resolve()
    package = Path(layra_migrate.__file__).resolve().parent
    if target == bundled or _inside(target, bundled) or _inside(target, package):
        raise ConfigError(
            "refusing to write a migration into the layra-migrate package's own folder "
            "(a reinstall replaces it, and its numbering would clash with yours)",
            path=str(directory),
            hint="run `layra-migrate new NAME` from your project directory (it writes "
            "./migrations) or pass --migrations-dir DIR of your project",
        )


def create(directory: Path, name: str, *, bundled: Path | None = None) -> Scaffolded:
    """Write the next migration file in ``directory`` (a project folder, never the
    package's); numbered after the highest of the bundled and the project's files."""
    bundled = bundled if bundled is not None else default_dir()
    refuse_package_folder(directory, bundled)
    path = next_file(directory, name)
    bundled_files = _numbered(bundled)
    project_files = _numbered(directory)
    top = max(
        (
            int(m.group(1))
            for p in [*bundled_files, *project_files]
            if (m := FILE_PATTERN.match(p.name))
        ),
        default=0,
    )
    path = directory / f"{top + 1:04d}_{path.name.split('_', 1)[1]}"
    title = name.strip().replace('"', "'") or path.stem
    done = Scaffolded(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not project_files:  # a fresh project folder: it must hold the whole set
            for src in bundled_files:
                dst = directory / src.name
                shutil.copyfile(src, dst)
                done.copied.append(dst)
        with path.open("x", encoding="utf-8") as fh:
            fh.write(TEMPLATE.format(title=title, stem=path.stem))
    except FileExistsError:
        raise ConfigError("migration file already exists", path=str(path)) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot write migration file: {exc.strerror or exc}", path=str(path)
        ) from None
    return done
