"""The wheel ships every package, including the bundled migrations."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_package_on_disk_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "layra_migrate").rglob("__init__.py")
    }
    assert on_disk <= listed, f"not shipped in the wheel: {sorted(on_disk - listed)}"
    assert config["package-dir"]["layra_migrate.migrations"] == "migrations"
    assert (REPO / "migrations" / "__init__.py").is_file()
    assert any((REPO / "migrations").glob("0001_*.py"))
