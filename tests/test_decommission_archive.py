"""The archive's verification and the crafted-archive refusals (no Docker needed)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from layra_migrate.decommission.archive import (
    ArchiveWriter,
    read_tar_fully,
    safe_member_path,
    verify_archive,
    verify_members,
)
from layra_migrate.decommission.discovery import classify
from layra_migrate.decommission.models import MANIFEST_SCHEMA
from layra_migrate.errors import ConfigError, VerificationFailed


def _tar(entries: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info in entries:
            payload = (data or {}).get(info.name)
            if payload is not None:
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
            else:
                tf.addfile(info)
    return buf.getvalue()


def _archive(tmp_path: Path, tar_bytes: bytes) -> Path:
    w = ArchiveWriter.create(tmp_path / "arch")
    w.write_bytes("volumes/v.tar", tar_bytes, "volume")
    w.write_manifest({"schema": MANIFEST_SCHEMA, "project": "p", "containers": []})
    return w.root


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def test_writer_modes_and_sums_match_sha256sum_format(tmp_path: Path) -> None:
    root = _archive(tmp_path, _tar([_file("data/a")], {"data/a": b"hello"}))
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "volumes").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "volumes/v.tar").stat().st_mode) == 0o600
    lines = (root / "SHA256SUMS").read_text().splitlines()
    digest, rel = lines[0].split("  ")
    assert rel == "volumes/v.tar"
    assert digest == hashlib.sha256((root / rel).read_bytes()).hexdigest()
    manifest = verify_archive(root)
    assert manifest["members"][0]["path"] == "volumes/v.tar"


def test_writer_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("1")
    with pytest.raises(ConfigError):
        ArchiveWriter.create(tmp_path / "x")


def test_gate_detects_a_changed_member(tmp_path: Path) -> None:
    w = ArchiveWriter.create(tmp_path / "arch")
    w.write_bytes("volumes/v.tar", _tar([_file("data/a")], {"data/a": b"x" * 4000}), "volume")
    assert verify_members(w.root, w.members) == []
    p = w.root / "volumes/v.tar"
    data = bytearray(p.read_bytes())
    data[700] ^= 0xFF
    p.write_bytes(bytes(data))
    assert any("checksum mismatch" in x for x in verify_members(w.root, w.members))


def test_gate_reads_every_tar_fully(tmp_path: Path) -> None:
    w = ArchiveWriter.create(tmp_path / "arch")
    good = _tar([_file("data/a")], {"data/a": b"y" * 5000})
    w.write_bytes("volumes/v.tar", good[:2048], "volume")  # truncated but correctly hashed
    problems = verify_members(w.root, w.members)
    assert problems and "unreadable tar" in problems[0]


@pytest.mark.parametrize("rel", ["../x", "/etc/passwd", "a/../../b", "", "a//b"])
def test_member_paths_must_be_plain(rel: str) -> None:
    with pytest.raises(VerificationFailed):
        safe_member_path(rel)


def _link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


@pytest.mark.parametrize(
    "entry",
    [
        _file("../escape"),
        _file("/abs"),
        _link("data/l", "/etc/shadow"),
        _link("data/l", "../../etc"),
        _link("data/sub/l", "../../x"),
        _link("data/h", "../x", True),
    ],
)
def test_restore_refuses_crafted_tar_members(tmp_path: Path, entry: tarfile.TarInfo) -> None:
    root = _archive(tmp_path, _tar([entry]))
    with pytest.raises(VerificationFailed):
        verify_archive(root)


def test_symlinks_inside_the_volume_are_fine(tmp_path: Path) -> None:
    root = _archive(
        tmp_path,
        _tar(
            [_file("data/a"), _link("data/l", "a"), _link("data/sub/l", "../a")], {"data/a": b"1"}
        ),
    )
    verify_archive(root)
    assert read_tar_fully(root / "volumes/v.tar", strict=True) == 3


def test_restore_refuses_a_symlinked_member(tmp_path: Path) -> None:
    root = _archive(tmp_path, _tar([_file("data/a")], {"data/a": b"1"}))
    secret = tmp_path / "outside"
    secret.write_bytes((root / "volumes/v.tar").read_bytes())
    os.unlink(root / "volumes/v.tar")
    os.symlink(secret, root / "volumes/v.tar")
    with pytest.raises(VerificationFailed, match="symlink"):
        verify_archive(root)


def test_restore_refuses_an_unknown_manifest(tmp_path: Path) -> None:
    w = ArchiveWriter.create(tmp_path / "arch")
    w.write_manifest({"schema": "something/else"})
    with pytest.raises(VerificationFailed, match="schema"):
        verify_archive(w.root)
    (w.root / "SHA256SUMS").unlink()
    with pytest.raises(ConfigError):
        verify_archive(w.root)


def test_manifest_is_scrubbed(tmp_path: Path) -> None:
    w = ArchiveWriter.create(tmp_path / "arch")
    w.write_manifest({"schema": MANIFEST_SCHEMA, "note": "key sk-proj-CANARYabcdefghijklmnop"})
    assert "CANARYabcdefghijklmnop" not in (w.root / "manifest.json").read_text()
    json.loads((w.root / "manifest.json").read_text())


@pytest.mark.parametrize(
    "service,name,image,role",
    [
        ("litellm", "p-litellm-1", "ghcr.io/berriai/litellm:main-stable", "proxy"),
        ("proxy", "litellm-proxy", "ghcr.io/berriai/litellm-database:main-v1.74", "proxy"),
        ("db", "p-db-1", "postgres:16", "database"),
        (None, "litellm_db", "docker.io/library/postgres:16-alpine", "database"),
        ("db", "p-db-1", "myregistry/pg@sha256:abc", "database"),
        ("redis", "p-redis-1", "redis:7-alpine", "cache"),
        (None, "litellm-redis", "valkey/valkey:8", "cache"),
        ("prometheus", "p-prometheus-1", "prom/prometheus", "other"),
    ],
)
def test_roles(service: str | None, name: str, image: str, role: str) -> None:
    assert classify(service, name, image) == role
