"""The archive folder: members written 0600 under a 0700 folder, a manifest,
``SHA256SUMS`` in ``sha256sum -c`` format, and the verification gate.

The folder holds secrets (the compose ``.env``, containers' full inspect with
their environment): treat it like a key file. ``manifest.json`` itself holds no
secret values; it names the members that do.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from layra_migrate import redact
from layra_migrate.decommission.models import MANIFEST_SCHEMA
from layra_migrate.errors import ConfigError, VerificationFailed
from layra_migrate.progress import NullProgress, Progress

ARCHIVE_TASK = "archive (bytes)"
VERIFY_TASK = "archive check (members)"

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
INCOMPLETE = "INCOMPLETE"
_CHUNK = 1 << 20


def default_archive_dir(now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path.cwd() / f"litellm-archive-{stamp}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def safe_member_path(rel: str) -> PurePosixPath:
    """Refuse absolute paths, ``..`` and empty parts in a member path (crafted archives)."""
    p = PurePosixPath(rel)
    if (
        not rel
        or p.is_absolute()
        or rel.startswith("\\")
        or any(part in ("..", "") for part in rel.split("/"))
        or "\x00" in rel
    ):
        raise VerificationFailed(
            f"archive member path {rel!r} is not a plain relative path",
            hint="the archive may have been crafted; nothing was touched",
        )
    return p


@dataclass
class Member:
    path: str  # relative, POSIX
    size: int
    sha256: str
    kind: str  # manifest-independent category: volume, dump, compose, inspect, ...

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256, "kind": self.kind}


class _HashingWriter:
    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.fh.write(data)
        self.h.update(data)
        self.size += len(data)
        return len(data)


@dataclass
class ArchiveWriter:
    root: Path
    members: list[Member] = field(default_factory=list)
    progress: Progress = field(default_factory=NullProgress)  # bytes, under ARCHIVE_TASK

    @classmethod
    def create(cls, root: Path) -> ArchiveWriter:
        root = root.expanduser().absolute()
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise ConfigError(
                "archive directory exists and is not empty",
                path=str(root),
                hint="pass a new --archive-dir",
            )
        old = os.umask(0o077)
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the archive directory ({exc.strerror})", path=str(root)
            ) from None
        finally:
            os.umask(old)
        os.chmod(root, 0o700)
        return cls(root)

    def _target(self, rel: str) -> Path:
        safe_member_path(rel)
        target = self.root / rel
        for parent in reversed(target.relative_to(self.root).parents):
            d = self.root / parent
            if not d.exists():
                d.mkdir(mode=0o700)
        return target

    def write_stream(self, rel: str, chunks: Iterable[bytes], kind: str) -> Member:
        target = self._target(rel)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                w = _HashingWriter(fh)
                for chunk in chunks:
                    if chunk:
                        w.write(chunk)
                        self.progress.advance(ARCHIVE_TASK, len(chunk))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            # A partial member is useless and may hold the space the manifest needs.
            target.unlink(missing_ok=True)
            if exc.filename is None and exc.errno is not None:
                raise OSError(exc.errno, exc.strerror, str(target)) from None
            raise
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        m = Member(rel, w.size, w.h.hexdigest(), kind)
        self._record(m)
        return m

    def write_bytes(self, rel: str, data: bytes, kind: str) -> Member:
        return self.write_stream(rel, [data], kind)

    def write_json(self, rel: str, obj: Any, kind: str) -> Member:
        return self.write_bytes(
            rel, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode(), kind
        )

    def copy_file(self, rel: str, source: Path, kind: str) -> Member:
        def chunks() -> Iterator[bytes]:
            with source.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    yield chunk

        return self.write_stream(rel, chunks(), kind)

    def _record(self, m: Member) -> None:
        self.members = [x for x in self.members if x.path != m.path] + [m]

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Write manifest.json (scrubbed) and SHA256SUMS over every member and the manifest."""
        body = dict(manifest)
        body["members"] = [m.as_dict() for m in self.members]
        data = (
            json.dumps(redact.scrub_obj(body), indent=2, sort_keys=True, default=str) + "\n"
        ).encode()
        lines = [f"{m.sha256}  {m.path}\n" for m in self.members]
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {MANIFEST}\n")
        # Both replaced atomically: a full disk leaves the previous pair intact.
        self._replace(SUMS + ".new", "".join(lines).encode(), None)
        self._replace(MANIFEST, data, SUMS)

    def _replace(self, name: str, data: bytes, then: str | None) -> None:
        tmp = self.root / (name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            if then:
                (self.root / (then + ".new")).unlink(missing_ok=True)
            raise
        os.replace(tmp, self.root / name)
        if then:
            os.replace(self.root / (then + ".new"), self.root / then)

    def mark_incomplete(self, why: str) -> None:
        fd = os.open(self.root / INCOMPLETE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(redact.scrub(why) + "\n")

    def clear_incomplete(self) -> None:
        (self.root / INCOMPLETE).unlink(missing_ok=True)


def read_tar_fully(path: Path, *, strict: bool = False) -> int:
    """Read every member of a tar to the end; return the member count.

    ``strict`` refuses absolute names, ``..`` and links that leave the tar's
    own top directory (a restore would otherwise write outside the volume).
    """
    count = 0
    try:
        with tarfile.open(path, "r:*") as tf:
            for info in tf:
                count += 1
                if strict:
                    _check_tar_member(info)
                if info.isfile():
                    fh = tf.extractfile(info)
                    if fh is not None:
                        while fh.read(_CHUNK):
                            pass
    except tarfile.TarError as exc:
        raise VerificationFailed(f"{path.name}: unreadable tar ({exc})") from None
    return count


def _check_tar_member(info: tarfile.TarInfo) -> None:
    name = info.name
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise VerificationFailed(
            f"tar member {name!r} escapes its directory",
            hint="the archive may have been crafted; nothing was touched",
        )
    if info.ischr() or info.isblk():
        raise VerificationFailed(
            f"tar member {name!r} is a device node",
            hint="the archive may have been crafted; nothing was touched",
        )
    if info.issym() or info.islnk():
        target = info.linkname
        if info.islnk():
            tparts = [p for p in target.split("/") if p not in ("", ".")]
            if target.startswith("/") or ".." in tparts:
                raise VerificationFailed(f"tar hard link {name!r} points outside the archive")
            return
        if target.startswith("/"):
            raise VerificationFailed(
                f"tar symlink {name!r} -> {target!r} is absolute",
                hint="the archive may have been crafted; nothing was touched",
            )
        depth = len(parts) - 1
        for p in target.split("/"):
            if p == "..":
                depth -= 1
            elif p not in ("", "."):
                depth += 1
            if depth < 1:  # must stay below the top directory of the tar
                raise VerificationFailed(
                    f"tar symlink {name!r} -> {target!r} leaves the volume",
                    hint="the archive may have been crafted",
                )


def verify_members(
    root: Path, members: Iterable[Member], progress: Progress | None = None
) -> list[str]:
    """The verification gate: re-hash every member and read every tar fully."""
    problems: list[str] = []
    listed = list(members)
    meter: Progress = progress or NullProgress()
    meter.start(VERIFY_TASK, len(listed))
    for m in listed:
        meter.advance(VERIFY_TASK)
        p = root / m.path
        try:
            if p.is_symlink() or not p.is_file():
                problems.append(f"{m.path}: missing or not a regular file")
                continue
            if p.stat().st_size != m.size or sha256_file(p) != m.sha256:
                problems.append(f"{m.path}: checksum mismatch")
                continue
            if m.path.endswith(".tar"):
                read_tar_fully(p)
        except VerificationFailed as exc:
            problems.append(str(exc))
        except OSError as exc:
            problems.append(f"{m.path}: unreadable ({exc.strerror})")
    meter.finish(VERIFY_TASK)
    return problems


def parse_sums(root: Path) -> list[tuple[str, str]]:
    path = root / SUMS
    if not path.is_file() or path.is_symlink():
        raise ConfigError(
            "no SHA256SUMS: not a layra-migrate archive",
            path=str(root),
            hint="pass the folder decommission wrote (it holds manifest.json)",
        )
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise VerificationFailed(f"{SUMS}:{n}: malformed line")
        safe_member_path(rel)
        rows.append((digest, rel))
    return rows


def verify_archive(root: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Check an archive on disk before any restore step: every checksum, every tar,
    no member outside the folder. Returns the manifest; raises VerificationFailed (exit 5).
    ``progress`` hears of each member checked (task ``VERIFY_TASK``)."""
    root = root.expanduser().absolute()
    if not root.is_dir():
        raise ConfigError("archive folder not found", path=str(root))
    rows = parse_sums(root)
    listed = {rel for _d, rel in rows}
    if MANIFEST not in listed:
        raise VerificationFailed("manifest.json is not covered by SHA256SUMS")
    problems: list[str] = []
    real_root = root.resolve()
    meter: Progress = progress or NullProgress()
    meter.start(VERIFY_TASK, len(rows))
    for digest, rel in rows:
        meter.advance(VERIFY_TASK)
        p = root / rel
        try:
            resolved = p.resolve()
        except OSError:
            problems.append(f"{rel}: unreadable")
            continue
        if p.is_symlink() or real_root not in resolved.parents:
            problems.append(f"{rel}: a symlink or a path outside the archive")
            continue
        if not p.is_file():
            problems.append(f"{rel}: missing")
            continue
        if sha256_file(p) != digest:
            problems.append(f"{rel}: checksum mismatch")
            continue
        if rel.endswith(".tar"):
            try:
                read_tar_fully(p, strict=True)
            except VerificationFailed as exc:
                problems.append(str(exc))
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            full = Path(dirpath) / n
            if full.is_symlink():
                problems.append(f"{full.relative_to(root)}: symlink inside the archive")
    meter.finish(VERIFY_TASK)
    if problems:
        raise VerificationFailed(
            f"archive verification failed: {'; '.join(problems[:5])}"
            + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""),
            hint="nothing was touched",
        )
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VerificationFailed(f"manifest.json unreadable: {exc.__class__.__name__}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise VerificationFailed("manifest.json has an unknown schema")
    for m in manifest.get("members") or []:
        rel = str(m.get("path", ""))
        safe_member_path(rel)
        if rel not in listed:
            raise VerificationFailed(f"manifest member {rel!r} is not covered by SHA256SUMS")
    return manifest


def human_size(n: int | None) -> str:
    if n is None:
        return "unknown"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
