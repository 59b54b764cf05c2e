"""The real PostgreSQL test image's cache (sandbox/postgres_image.py): keyed by the
recipe, reused without running mmdebstrap, rebuilt when the recipe changes, and a
failed build leaves nothing half-written behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from layra_migrate.sandbox import postgres_image as pgi


def test_key_changes_with_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    base, full, ref = pgi.rootfs_key(), pgi.recipe_key(), pgi.image_ref()
    assert ref.endswith(full[:12]) and ref.startswith(pgi.IMAGE_REPO + ":15-")
    monkeypatch.setattr(pgi, "ENTRYPOINT", pgi.ENTRYPOINT + "# changed\n")
    assert pgi.rootfs_key() == base  # the root filesystem is reused...
    assert pgi.recipe_key() != full  # ...the image is rebuilt
    monkeypatch.setattr(pgi, "_EXCLUDES", (*pgi._EXCLUDES, "/usr/share/zoneinfo/right/*"))
    assert pgi.rootfs_key() != base


def test_cached_rootfs_is_used_without_mmdebstrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = tmp_path / f"postgresql-15-bookworm-{pgi.rootfs_key()[:16]}.tar"
    cached.write_bytes(b"tar")
    monkeypatch.setattr(pgi, "cannot_build_reason", lambda: "must not be asked")
    got = pgi.ensure_rootfs(tmp_path)
    assert got.path == cached and got.built is False


def test_missing_mmdebstrap_is_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgi.shutil, "which", lambda _name: None)
    with pytest.raises(pgi.ImageBuildError, match="mmdebstrap is not installed"):
        pgi.ensure_rootfs(tmp_path)


def test_failed_build_names_the_exit_and_leaves_no_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_args(out: Path) -> list[str]:
        return ["sh", "-c", f"echo half > {out}; echo 'E: mirror unreachable' >&2; exit 3"]

    monkeypatch.setattr(pgi, "cannot_build_reason", lambda: None)
    monkeypatch.setattr(pgi, "mmdebstrap_args", fake_args)
    with pytest.raises(pgi.ImageBuildError, match="exited 3: .*mirror unreachable"):
        pgi.ensure_rootfs(tmp_path)
    assert not list(tmp_path.glob("*.partial-*"))
    assert not list(tmp_path.glob("*.tar"))
