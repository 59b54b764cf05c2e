"""Logical Postgres dump through the low-level exec API, while the database runs.

``pg_dump -Fc`` is streamed (``exec_start(stream=True, demux=True)``), never
buffered: non-streaming ``exec_run(demux=True)`` is quadratic on large output.
The exit code comes from ``exec_inspect`` (a missing binary is 126, not an
exception). The dump is checked with ``pg_restore --list`` inside the same
container, since the host's tools may be older. Every command is an argument
list: no shell string is ever built from names or values.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from layra_migrate import redact
from layra_migrate.decommission.client import docker_errors
from layra_migrate.decommission.pg_errors import explain
from layra_migrate.decommission.roles import pg_login

if TYPE_CHECKING:
    import docker

    from layra_migrate.decommission.archive import ArchiveWriter, Member
    from layra_migrate.decommission.discovery import StackContainer

_STDERR_KEEP = 400
CHECK_PATH = "/tmp/layra-migrate-check.dump"


@dataclass
class ExecOutcome:
    exit_code: int | None
    stderr: str


class _Exec:
    """One exec: iterate stdout chunks, then read exit code and stderr tail."""

    def __init__(
        self,
        client: docker.DockerClient,
        container_id: str,
        cmd: list[str],
        env: dict[str, str] | None = None,
    ) -> None:
        self.api = client.api
        self.exec_id = self.api.exec_create(
            container_id, cmd, stdout=True, stderr=True, environment=env or None
        )["Id"]
        self._err = bytearray()

    def stdout(self) -> Iterator[bytes]:
        for out, err in self.api.exec_start(self.exec_id, stream=True, demux=True):
            if err:
                self._err += err
                del self._err[:-_STDERR_KEEP]
            if out:
                yield out

    def outcome(self) -> ExecOutcome:
        code = self.api.exec_inspect(self.exec_id).get("ExitCode")
        text = redact.scrub(self._err.decode("utf-8", "replace").strip().replace("\n", " "))
        return ExecOutcome(code, text[-_STDERR_KEEP:])


def run_exec(
    client: docker.DockerClient,
    container_id: str,
    cmd: list[str],
    env: dict[str, str] | None = None,
) -> tuple[bytes, ExecOutcome]:
    """A short exec whose output fits in memory (version checks, listings)."""
    e = _Exec(client, container_id, cmd, env)
    out = b"".join(e.stdout())
    return out, e.outcome()


@dataclass
class DumpResult:
    status: str  # done | skipped | failed
    detail: str
    members: list[Member]
    entries: int | None = None
    reason: str | None = None  # why it was skipped (pg_errors codes), None when done

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "detail": self.detail,
            "entries": self.entries,
            "members": [m.path for m in self.members],
            "reason": self.reason,
        }


def _explain(code: int | None, stderr: str, tool: str) -> str:
    if code in (126, 127):
        return f"{tool} not available in the container (exit {code})"
    return f"{tool} exited {code}" + (f": {stderr}" if stderr else "")


def dump_database(
    client: docker.DockerClient, db: StackContainer, writer: ArchiveWriter
) -> DumpResult:
    """pg_dump -Fc + pg_dumpall --globals-only, checked with pg_restore --list.

    Returns ``skipped`` with the reason when the container cannot dump; the
    physical volume copy after the clean stop is the fallback either way.
    """
    login = pg_login(db.env())
    user, dbname = login.user, login.dbname
    base = f"database/{db.name}"
    members: list[Member] = []
    # The official image trusts the local socket; other setups need the password, which
    # the container already holds. Passed in the exec's environment, never on a command line.
    auth = login.exec_env(timeout_s=30)
    with docker_errors(f"dumping {db.name}"):
        e = _Exec(
            client,
            db.id,
            [
                "pg_dump",
                "-U",
                user,
                "-d",
                dbname,
                "-Fc",
                "--no-password",
                "--lock-wait-timeout=30s",
            ],
            auth,
        )
        member = writer.write_stream(f"{base}.dump", e.stdout(), "dump")
        out = e.outcome()
        if out.exit_code != 0 or member.size == 0:
            _discard(writer, member)
            failure = (
                explain(out.stderr, user=user, dbname=dbname, container=db.name)
                if out.exit_code not in (126, 127)
                else None
            )
            detail = _explain(out.exit_code, "" if failure else out.stderr, "pg_dump")
            if failure:
                detail += f": {failure.text()}"
            detail += "; the volume copy after the clean stop is the fallback"
            if failure and out.stderr:
                detail += f" [{out.stderr[-200:]}]"
            return DumpResult(
                "skipped",
                detail,
                [],
                reason=failure.code
                if failure
                else "pg_dump_missing"
                if out.exit_code in (126, 127)
                else "pg_dump_failed",
            )
        members.append(member)
        g = _Exec(
            client, db.id, ["pg_dumpall", "-U", user, "--globals-only", "--no-password"], auth
        )
        gm = writer.write_stream(f"{base}.globals.sql", g.stdout(), "dump")
        gout = g.outcome()
        notes = []
        if gout.exit_code == 0:
            members.append(gm)
        else:
            _discard(writer, gm)
            notes.append("roles not dumped: " + _explain(gout.exit_code, gout.stderr, "pg_dumpall"))
        check, entries, why = _check_with_pg_restore(client, db, writer.root / member.path)
        if check == "bad":
            for m in members:
                _discard(writer, m)
            return DumpResult(
                "skipped",
                f"dump not usable ({why}); the volume copy after the clean stop is the fallback",
                [],
                reason="dump_rejected",
            )
        if check == "unchecked":
            notes.append(f"not checked with pg_restore --list: {why}")
    shown = f"{entries} entries" if entries is not None else "unchecked"
    detail = f"pg_dump -Fc of {dbname!r} ({member.size} bytes, {shown})"
    if notes:
        detail += "; " + "; ".join(notes)
    return DumpResult("done", detail, members, entries)


def _discard(writer: ArchiveWriter, member: Member) -> None:
    writer.members = [m for m in writer.members if m.path != member.path]
    try:
        os.unlink(writer.root / member.path)
    except OSError:
        pass


def _tar_stream(path: os.PathLike[str], arcname: str) -> Iterator[bytes]:
    """A one-file tar, generated while reading: no temporary copy of a large dump."""
    size = os.path.getsize(path)
    info = tarfile.TarInfo(arcname)
    info.size, info.mode = size, 0o644
    yield info.tobuf(format=tarfile.PAX_FORMAT)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            yield chunk
    pad = (-size) % tarfile.BLOCKSIZE
    yield b"\0" * pad + b"\0" * (2 * tarfile.BLOCKSIZE)


def _check_with_pg_restore(
    client: docker.DockerClient, db: StackContainer, dump_path: os.PathLike[str]
) -> tuple[str, int | None, str]:
    """Copy the dump into the container's /tmp and list it there.

    ``("ok", entries, "")``, ``("bad", None, why)`` when pg_restore rejects it, or
    ``("unchecked", None, why)`` when the check itself could not run (read-only /tmp,
    no pg_restore): the dump is kept then, since pg_dump itself succeeded.
    """
    import docker

    try:
        copied = client.api.put_archive(
            db.id, "/tmp", _tar_stream(dump_path, CHECK_PATH.rsplit("/", 1)[1])
        )
    except docker.errors.APIError as exc:
        return "unchecked", None, f"cannot copy the dump into the container ({exc.status_code})"
    if not copied:
        return "unchecked", None, "cannot copy the dump into the container"
    try:
        listing, out = run_exec(client, db.id, ["pg_restore", "--list", CHECK_PATH])
    finally:
        run_exec(client, db.id, ["rm", "-f", CHECK_PATH])
    if out.exit_code in (126, 127):
        return "unchecked", None, _explain(out.exit_code, out.stderr, "pg_restore")
    if out.exit_code != 0:
        return "bad", None, _explain(out.exit_code, out.stderr, "pg_restore --list")
    entries = sum(1 for line in io.BytesIO(listing) if line.strip() and not line.startswith(b";"))
    return "ok", entries, ""
