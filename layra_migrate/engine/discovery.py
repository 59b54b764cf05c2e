"""Finding, loading and validating migration files.

A migration is ``NNNN_slug.py`` (four digits, lower-case slug) declaring
``id`` (its file stem), ``description``, ``async def up(ctx)`` and optionally
``async def down(ctx)``. Numbers run 0001, 0002, ... without gaps or
duplicates. Any problem is a :class:`ConfigError` (exit 2) naming the file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from layra_migrate.errors import ConfigError

if TYPE_CHECKING:
    from layra_migrate.engine.api import DownFunction, UpFunction

FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9][a-z0-9_]*)\.py$")
ENV_DIR = "LAYRA_MIGRATE_MIGRATIONS_DIR"


@dataclass(frozen=True)
class Migration:
    id: str  # the file stem, e.g. 0001_litellm_to_direct
    number: int
    description: str
    path: Path
    checksum: str  # sha256 of the file's bytes
    up: UpFunction
    down: DownFunction | None

    def matches(self, ref: str) -> bool:
        """``0001``, ``1`` and ``0001_litellm_to_direct`` all name migration 1."""
        ref = ref.strip()
        return ref == self.id or (ref.isdigit() and int(ref) == self.number)


def default_dir() -> Path:
    """The bundled migrations: ``layra_migrate.migrations`` when installed, else the
    repository's top-level ``migrations/`` (editable installs and source checkouts)."""
    try:
        spec = importlib.util.find_spec("layra_migrate.migrations")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            if Path(loc).is_dir():
                return Path(loc)
    import layra_migrate

    return Path(layra_migrate.__file__).resolve().parent.parent / "migrations"


def file_checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load(path: Path, number: int) -> Migration:
    shown = str(path)
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read migration file: {exc.strerror or exc}", path=shown
        ) from None
    try:
        compile(source, shown, "exec")
    except SyntaxError as exc:
        raise ConfigError(
            f"syntax error in migration file: {exc.msg}", path=shown, line=exc.lineno
        ) from None
    mod_name = f"layra_migrate_migration_{path.stem}_{hashlib.sha1(shown.encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError("cannot load migration file", path=shown)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any import-time failure is the file's fault
        sys.modules.pop(mod_name, None)
        raise ConfigError(
            f"migration file failed to import: {exc.__class__.__name__}: {exc}", path=shown
        ) from None
    mid = getattr(module, "id", None)
    if mid != path.stem:
        raise ConfigError(
            f"migration declares id = {mid!r}; it must be the file name {path.stem!r}", path=shown
        )
    description = getattr(module, "description", None)
    if not isinstance(description, str) or not description.strip():
        raise ConfigError("migration lacks a `description` string", path=shown)
    up = getattr(module, "up", None)
    if up is None or not inspect.iscoroutinefunction(up):
        raise ConfigError("migration lacks `async def up(ctx)`", path=shown)
    down = getattr(module, "down", None)
    if down is not None and not inspect.iscoroutinefunction(down):
        raise ConfigError("`down` must be `async def down(ctx)`", path=shown)
    return Migration(
        path.stem, number, description.strip(), path, hashlib.sha256(source).hexdigest(), up, down
    )


def discover(directory: str | Path | None = None) -> list[Migration]:
    """Every migration in order, validated. ``None`` means the bundled folder."""
    folder = Path(directory) if directory is not None else default_dir()
    if not folder.is_dir():
        raise ConfigError(
            "migrations folder not found",
            path=str(folder),
            hint=f"pass --migrations-dir or set {ENV_DIR}",
        )
    found: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix != ".py" or path.name.startswith("_") or not path.is_file():
            continue
        m = FILE_PATTERN.match(path.name)
        if m is None:
            raise ConfigError(
                "migration file name must be NNNN_slug.py (four digits, lower-case slug)",
                path=str(path),
            )
        number = int(m.group(1))
        if number in found:
            raise ConfigError(
                f"duplicate migration number {m.group(1)} (also {found[number].name})",
                path=str(path),
            )
        found[number] = path
    numbers = sorted(found)
    for expected, number in enumerate(numbers, start=1):
        if number != expected:
            raise ConfigError(
                f"migration numbers must run 0001, 0002, ... without gaps: "
                f"{expected:04d} is missing",
                path=str(found[number]),
            )
    return [_load(found[n], n) for n in numbers]


def next_file(directory: Path, name: str) -> Path:
    """The path ``layra-migrate new NAME`` creates."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise ConfigError(
            f"cannot make a file name from {name!r}",
            hint="use letters and digits, e.g. `new point_gemini_at_vertex`",
        )
    numbers = []
    if directory.is_dir():
        numbers = [
            int(m.group(1)) for p in directory.iterdir() if (m := FILE_PATTERN.match(p.name))
        ]
    return directory / f"{max(numbers, default=0) + 1:04d}_{slug}.py"
