"""A real PostgreSQL 15 image built from Debian packages, without any registry.

``mmdebstrap --variant=minbase --include=postgresql-15 bookworm`` writes a root
filesystem whose ``postgres``, ``initdb``, ``pg_dump``, ``pg_dumpall`` and
``pg_restore`` are Debian's real binaries (``/usr/lib/postgresql/15/bin``);
``docker import`` turns it into an image, and a small entrypoint (written here, not
copied) does what the official image's does: ``initdb`` with ``POSTGRES_USER`` /
``POSTGRES_PASSWORD`` / ``POSTGRES_DB`` into ``PGDATA`` on the first start, scripts
from ``/docker-entrypoint-initdb.d``, then ``postgres`` on the default socket
(``/var/run/postgresql``) and on every address with password authentication.

Building takes minutes (the download); the root filesystem is cached on disk by a
content key of the recipe (:func:`recipe_key`), so a changed recipe is rebuilt and
an unchanged one is reused by every later run on the machine. The image tag carries
the key too (:func:`image_ref`), so an engine that already holds the image is not
asked to import it again.

Size: documentation, manual pages, translations and the LLVM JIT provider (which
PostgreSQL loads only when it exists; without it JIT is simply off, as in a build
``--without-llvm``) are left out, halving the root filesystem.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECIPE_VERSION = "1"
PG_MAJOR = "15"
SUITE = "bookworm"
BIN_DIR = f"/usr/lib/postgresql/{PG_MAJOR}/bin"
DEFAULT_PGDATA = "/var/lib/postgresql/data"
IMAGE_REPO = "layra-test/postgres-debian"

_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
    # The JIT provider and what only it needs (LLVM, z3): PostgreSQL checks the
    # provider file exists before loading it, and runs without JIT when it does not.
    f"/usr/lib/postgresql/{PG_MAJOR}/lib/llvmjit*",
    f"/usr/lib/postgresql/{PG_MAJOR}/lib/bitcode/*",
    "/usr/lib/*/libLLVM-*",
    "/usr/lib/*/libz3.so*",
)


def mmdebstrap_args(out: Path) -> list[str]:
    """The recipe: every argument of the mmdebstrap call (part of the content key)."""
    args = [
        "mmdebstrap",
        "--variant=minbase",
        "--format=tar",
        f"--include=postgresql-{PG_MAJOR}",
        "--components=main",
    ]
    args += [f"--dpkgopt=path-exclude={p}" for p in _EXCLUDES]
    args.append("--dpkgopt=path-include=/usr/share/doc/*/copyright")
    # Debian's package creates a cluster of its own at install time: the image
    # initialises PGDATA itself, like the official one.
    args.append(
        f'--customize-hook=rm -rf "$1/var/lib/postgresql/{PG_MAJOR}" "$1/etc/postgresql/{PG_MAJOR}"'
    )
    args += [SUITE, str(out)]
    return args


ENTRYPOINT = r"""#!/bin/sh
# layra-migrate test image: what the official postgres image's entrypoint does, in short.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ "${1:-}" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 2775 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_USER:=postgres}"
  : "${POSTGRES_DB:=$POSTGRES_USER}"
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]; then
    echo "error: database is uninitialized and POSTGRES_PASSWORD is not set" >&2
    exit 1
  fi
  pwfile="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" ${POSTGRES_INITDB_ARGS:-}
  rm -f "$pwfile"
  printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" \
    >> "$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  export PGPASSWORD="${PGPASSWORD:-${POSTGRES_PASSWORD:-}}"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
      --set db="$POSTGRES_DB" <<'SQL'
CREATE DATABASE :"db";
SQL
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "running $f"; . "$f" ;;
      *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 --no-psqlrc \
               --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$f" ;;
      *) ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  unset PGPASSWORD
  echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
"""

IMAGE_CHANGES = [
    f"ENV PATH={BIN_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    f"ENV PGDATA={DEFAULT_PGDATA}",
    "ENV LANG=C.UTF-8",
    'ENTRYPOINT ["docker-entrypoint.sh"]',
    'CMD ["postgres"]',
    # The official image also has STOPSIGNAL SIGINT (fast shutdown), which the engine does
    # not accept as a commit change: containers set it themselves (STOP_SIGNAL).
    "EXPOSE 5432",
]


STOP_SIGNAL = "SIGINT"


class ImageBuildError(RuntimeError):
    """mmdebstrap could not build the root filesystem (the message says why)."""


def rootfs_key() -> str:
    """Content key of the root filesystem recipe."""
    blob = json.dumps({"v": RECIPE_VERSION, "args": mmdebstrap_args(Path("OUT"))}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def recipe_key() -> str:
    """Content key of the whole image: the root filesystem recipe, entrypoint, config."""
    blob = json.dumps(
        {"rootfs": rootfs_key(), "entrypoint": ENTRYPOINT, "changes": IMAGE_CHANGES}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def image_ref() -> str:
    return f"{IMAGE_REPO}:{PG_MAJOR}-{recipe_key()[:12]}"


def cache_dir() -> Path:
    """``LAYRA_MIGRATE_IMAGE_CACHE``, else ``$XDG_CACHE_HOME`` (or ``~/.cache``)
    ``/layra-migrate/images``."""
    explicit = os.environ.get("LAYRA_MIGRATE_IMAGE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "layra-migrate" / "images"


@dataclass
class Rootfs:
    path: Path
    key: str
    built: bool  # False: taken from the cache
    seconds: float


def cannot_build_reason() -> str | None:
    """Why mmdebstrap cannot run here, or None."""
    if not shutil.which("mmdebstrap"):
        return "mmdebstrap is not installed (Debian package mmdebstrap)"
    if os.geteuid() != 0 and not Path("/proc/self/ns/user").exists():
        return "mmdebstrap needs root or user namespaces"
    return None


def _drop(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def ensure_rootfs(cache: Path | None = None, *, timeout_s: float = 900.0) -> Rootfs:
    """The cached root filesystem tar, building it once (under a lock: concurrent test
    sessions on one machine wait for the first builder instead of building twice)."""
    key = rootfs_key()
    root = cache or cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"postgresql-{PG_MAJOR}-{SUITE}-{key[:16]}.tar"
    t0 = time.monotonic()
    if final.is_file():
        return Rootfs(final, key, False, time.monotonic() - t0)
    why = cannot_build_reason()
    if why:
        raise ImageBuildError(why)
    with (root / f"{final.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.is_file():
            return Rootfs(final, key, False, time.monotonic() - t0)
        partial = root / f"{final.stem}.partial-{os.getpid()}.tar"
        log = root / f"{final.name}.log"
        try:
            with log.open("wb") as fh:
                proc = subprocess.run(
                    mmdebstrap_args(partial),
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    timeout=timeout_s,
                    check=False,
                )
        except subprocess.TimeoutExpired:
            _drop(partial)
            raise ImageBuildError(
                f"mmdebstrap did not finish within {timeout_s:g}s (log: {log})"
            ) from None
        if proc.returncode != 0 or not partial.is_file():
            _drop(partial)
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise ImageBuildError(
                f"mmdebstrap exited {proc.returncode}: {' | '.join(tail)} (log: {log})"
            )
        os.replace(partial, final)
        (root / f"{final.name}.json").write_text(
            json.dumps(
                {
                    "key": key,
                    "args": mmdebstrap_args(final),
                    "seconds": round(time.monotonic() - t0, 1),
                },
                indent=2,
            )
        )
    return Rootfs(final, key, True, time.monotonic() - t0)


def _entrypoint_tar() -> bytes:
    buf = io.BytesIO()
    data = ENTRYPOINT.encode()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("docker-entrypoint.sh")
        info.size, info.mode = len(data), 0o755
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def has_image(client: Any, ref: str) -> bool:
    import docker

    try:
        client.api.inspect_image(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_image(client: Any, rootfs: Rootfs) -> tuple[str, bool]:
    """The image on this engine: ``(reference, imported now)``. ``docker import`` of the
    root filesystem, then one committed layer with the entrypoint and the config."""
    ref = image_ref()
    if has_image(client, ref):
        return ref, False
    api = client.api
    base = f"{IMAGE_REPO}-rootfs:{rootfs.key[:12]}"
    if not has_image(client, base):
        repo, tag = base.rsplit(":", 1)
        with rootfs.path.open("rb") as fh:
            api.import_image_from_data(fh, repository=repo, tag=tag)
    c = api.create_container(
        base, command=["/bin/true"], host_config=api.create_host_config(network_mode="none")
    )
    try:
        if not api.put_archive(c["Id"], "/usr/local/bin", _entrypoint_tar()):
            raise ImageBuildError("could not write the entrypoint into the image")
        # /docker-entrypoint-initdb.d at the root, like the official image's.
        if not api.put_archive(c["Id"], "/", _initdb_dir_tar()):
            raise ImageBuildError("could not create /docker-entrypoint-initdb.d")
        repo, tag = ref.rsplit(":", 1)
        api.commit(c["Id"], repository=repo, tag=tag, changes=IMAGE_CHANGES)
    finally:
        api.remove_container(c["Id"], force=True)
    return ref, True


def _initdb_dir_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        d = tarfile.TarInfo("docker-entrypoint-initdb.d")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(d)
    return buf.getvalue()
