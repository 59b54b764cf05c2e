"""The commands as library calls: one function per command, each a whole job.

Alembic's ``command`` module is the model. Every function here does every step the
command-line tool does for that command (preflight, confirmation, Redis, locks, the
decommission interlock, run records) and returns a result object that owns its JSON
form (``as_json()``), its schema id and its exit code. The Typer layer only turns
options into :class:`~layra_migrate.settings.Settings`, calls one of these and renders
the result, so a Python caller gets exactly the command's safety rules::

    import asyncio
    from layra_migrate import commands, load_settings

    settings = load_settings(env_file="/srv/layra/.env")
    result = asyncio.run(commands.status(settings))
    print(result.as_json())

Nothing here prints, exits or imports Typer or Rich. What a running command has to
tell its caller (warnings, the preflight before the confirmation, progress) goes to a
:class:`Hooks` object; writing commands ask an injected ``confirm`` callback before
the first write (default: refuse, as a terminal without ``--yes`` does). Expected
failures raise :class:`~layra_migrate.errors.LayraMigrateError` subclasses, each
carrying its exit code; a run that finished with a finding (conflicts, a failed
probe, a rolled-back decommission) returns a result whose ``exit_code`` says so.

Heavy modules (PyMongo, the Docker SDK, the OpenAI SDK) are imported inside the
functions: importing this module stays as cheap as importing the settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from layra_migrate.decommission.models import RunResult
from layra_migrate.errors import (
    EXIT_CONFLICTS,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_VERIFY_FAILED,
    ConfigError,
    LayraMigrateError,
    RefusedError,
    UsageError,
)
from layra_migrate.settings import Settings

if TYPE_CHECKING:
    import docker

    from layra_migrate.audit import AuditReport
    from layra_migrate.decommission.models import InterlockReport
    from layra_migrate.dryrun import DryRunPlan
    from layra_migrate.engine.cache import CacheGate, RedisCache
    from layra_migrate.engine.check import CheckResult as CheckRun
    from layra_migrate.engine.context import Progress, StopFlag
    from layra_migrate.engine.lock import UnlockResult as UnlockRun
    from layra_migrate.engine.preflight import Preflight
    from layra_migrate.engine.runner import ApplyResult, StatusReport
    from layra_migrate.engine.runner import RollbackResult as RollbackRun
    from layra_migrate.history import History
    from layra_migrate.litellm.proxy_db import ProxyDbModels
    from layra_migrate.plan import Plan
    from layra_migrate.proxy import ProxySet
    from layra_migrate.verify import ProbeResult, VerifyReport, VerifyTarget
    from layra_migrate.verify.against_proxy import ProxyComparisonReport

DecommissionResult = RunResult
"""``decommission`` and ``restore`` return the decommission core's own result object
(``schema`` is ``layra-migrate/decommission/v1`` or ``layra-migrate/restore/v1``)."""

DEFAULT_PLAN = Path("plan.yaml")
"""The plan ``rewrite`` and ``check`` read when none is given (``./plan.yaml``)."""


def schema_id(command: str) -> str:
    """The JSON schema id of a command's output (``layra-migrate/<command>/v1``)."""
    return f"layra-migrate/{command}/v1"


# ---------------------------------------------------------------------------------------
# What a command asks and tells its caller


Confirm = Callable[[str, "str | None"], bool]
"""``confirm(question, expected)`` -> proceed? ``expected`` is a word the person must
type (decommission and restore ask for the project name), else ``None`` (yes/no). The
callback may raise (the CLI raises a usage error on a terminal that cannot ask)."""


def assume_yes(question: str, expected: str | None) -> bool:
    """A ``confirm`` callback that always proceeds (the CLI's ``--yes``)."""
    return True


def no_confirmation(question: str, expected: str | None) -> bool:
    """The default ``confirm``: refuse to write without an explicit answer."""
    raise UsageError(
        "refusing to write without confirmation",
        hint="pass confirm=layra_migrate.assume_yes (the CLI's --yes) or a callback that asks",
    )


class Hooks:
    """What a running command tells its caller. Every method does nothing by default.

    The CLI subclasses this to print (``cli/hooks.py``); a Python caller overrides what
    it wants to see.
    """

    def warn(self, text: str) -> None:
        """Something the operator should know; the command goes on."""

    def info(self, text: str) -> None:
        """A line that is not part of the result."""

    def rewrite_preflight(self, pre: Preflight, plan: Plan, plan_path: Path) -> None:
        """``rewrite``: what is about to be written, before the confirmation."""

    def decommission_plan(self, result: RunResult) -> None:
        """``decommission``: the planned steps, before the confirmation."""

    def decommission_step(self, label: str) -> None:
        """``decommission``: a step starts."""

    def writing(self, stop: StopFlag) -> None:
        """The confirmed run starts (rewrite, rollback, check). Setting ``stop`` stops
        it after the current batch; the CLI wires Ctrl-C and SIGTERM to it here."""

    def progress(self) -> AbstractContextManager[Progress | None]:
        """A progress sink for the run (``None``: no progress)."""
        return nullcontext(None)


_QUIET = Hooks()


# ---------------------------------------------------------------------------------------
# Result objects


@dataclass
class AuditResult:
    """``audit``: the report, and where the plan was written (if asked)."""

    SCHEMA: ClassVar[str] = schema_id("audit")
    report: AuditReport
    plan_path: Path | None = None
    exit_code: int = EXIT_OK
    proxy_db: ProxyDbModels | None = None  # models stored in the proxy's database

    def as_json(self) -> dict[str, Any]:
        data = self.report.as_json()
        data["plan"] = str(self.plan_path) if self.plan_path else None
        data["proxy_db"] = self.proxy_db.as_dict() if self.proxy_db else None
        return data


@dataclass
class RewriteResult:
    """``rewrite``: the preflight and what the run applied (or would, with dry_run)."""

    SCHEMA: ClassVar[str] = schema_id("rewrite")
    database: str | None
    dry_run: bool
    plan_path: Path
    preflight: Preflight
    applied: ApplyResult
    dry_plan: DryRunPlan | None = None  # the dry run as a plan (summary, blockers, diff)
    summary_only: bool = False

    @property
    def cache_failed(self) -> list[str]:
        """Redis keys that could not be deleted after the MongoDB write."""
        cache = self.applied.cache
        return list(cache.failed) if cache is not None else []

    @property
    def exit_code(self) -> int:
        if self.dry_plan is not None:  # what the real run would do: 0, 4 (or 3)
            return self.dry_plan.exit_code
        return EXIT_UNREACHABLE if self.cache_failed else EXIT_OK

    def as_json(self) -> dict[str, Any]:
        r = self.applied
        plan: dict[str, Any] = {}
        if self.dry_plan is not None:
            head = self.dry_plan.as_json(full=False)
            plan = {k: head[k] for k in ("summary", "blockers", "duplicates")}
        return {
            "schema": self.SCHEMA,
            "database": self.database,
            "dry_run": self.dry_run,
            "plan": str(self.plan_path),
            "preflight": self.preflight.as_dict(),
            **plan,
            "skipped_unresolved": [b.model_name for b in self.preflight.skipped],
            "skipped": [b.as_dict() for b in self.preflight.skipped],
            "migrations": [m.as_dict() for m in r.migrations],
            "documents": r.documents,
            "changes": (
                [c.as_dict() for c in r.changes] if self.dry_run and not self.summary_only else None
            ),
            "accepted_changes": r.accepted,
            "lock_taken_over": r.took_over.as_dict() if r.took_over else None,
            "redis": (
                r.cache.as_dict()
                if r.cache
                else {
                    "keys": len(r.cache_keys),
                    "deleted": 0,
                    "not_cached": 0,
                    "failed": [],
                    "redis_url": None,
                    "error": None,
                }
            )
            | ({"check": self.dry_plan.redis.get("check")} if self.dry_plan else {}),
            "exit_code": self.exit_code,
        }


@dataclass
class RollbackResult:
    """``rollback``: what was restored, and the conflicts left alone."""

    SCHEMA: ClassVar[str] = schema_id("rollback")
    database: str | None
    dry_run: bool
    force: bool
    run: RollbackRun
    redis_problem: LayraMigrateError | None = None  # dry run: what the real run would hit

    @property
    def cache_failed(self) -> list[str]:
        cache = self.run.cache
        return list(cache.failed) if cache is not None else []

    @property
    def cache_keys(self) -> int:
        return sum(len(s.cache_keys) for s in self.run.stats.values())

    @property
    def exit_code(self) -> int:
        if self.run.conflict_count:
            return EXIT_CONFLICTS
        if self.redis_problem is not None:
            return self.redis_problem.exit_code
        return EXIT_UNREACHABLE if self.cache_failed else EXIT_OK

    def as_json(self) -> dict[str, Any]:
        r = self.run
        return {
            "schema": self.SCHEMA,
            "database": self.database,
            "dry_run": self.dry_run,
            "force": self.force,
            "migrations": [m.as_dict() | {"counts": r.stats[m.id].as_dict()} for m in r.migrations],
            "restored": sum(s.restored for s in r.stats.values()),
            "conflict_count": r.conflict_count,
            "conflicts": [c.as_dict() for c in r.conflicts],
            "restores": [x.as_dict() for x in r.restores] if self.dry_run else None,
            "lock_taken_over": r.took_over.as_dict() if r.took_over else None,
            "redis": r.cache.as_dict() if r.cache else None,
            "redis_problem": self.redis_problem.message if self.redis_problem else None,
            "exit_code": self.exit_code,
        }


@dataclass
class StatusResult:
    """``status``: every migration's state and the lock."""

    SCHEMA: ClassVar[str] = schema_id("status")
    report: StatusReport
    exit_code: int = EXIT_OK

    @property
    def pending(self) -> list[str]:
        """Migrations not applied (pending, interrupted, partially rolled back)."""
        from layra_migrate.engine.ledger import LedgerState

        return [r.id for r in self.report.migrations if r.state != LedgerState.APPLIED]

    def as_json(self) -> dict[str, Any]:
        return {"schema": self.SCHEMA, **self.report.as_dict()}


@dataclass
class CheckResult:
    """``check``: the reversibility proof on a scratch copy."""

    SCHEMA: ClassVar[str] = schema_id("check")
    database: str | None
    preflight: Preflight
    run: CheckRun

    @property
    def ok(self) -> bool:
        return self.run.ok

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.run.ok else EXIT_VERIFY_FAILED

    def as_json(self) -> dict[str, Any]:
        r = self.run
        return {
            "schema": self.SCHEMA,
            "database": self.database,
            "scratch_db": r.scratch_db,
            "ok": r.ok,
            "copied": r.copied,
            "original_hash": r.original,
            "steps": [s.as_dict() for s in r.steps],
            "first_difference": r.first_difference,
            "blocking": [b.as_dict() for b in self.preflight.blocking],
            "placeholder_keys": self.preflight.placeholder_keys,
            "exit_code": self.exit_code,
        }


@dataclass
class VerifyResult:
    """``verify``: one probe per target; passed unless a target failed (or was skipped
    without ``allow_skipped``)."""

    SCHEMA: ClassVar[str] = schema_id("verify")
    report: VerifyReport
    allow_skipped: bool = False

    @property
    def passed(self) -> bool:
        return self.report.passed(self.allow_skipped)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.passed else EXIT_VERIFY_FAILED

    def as_json(self) -> dict[str, Any]:
        return self.report.as_json()


@dataclass
class ProxyComparisonResult:
    """``verify --against-proxy``: per proxied name, the proxy's answer against the direct
    target's; passed only when every name is ``same`` (skipped ones with ``allow_skipped``)."""

    SCHEMA: ClassVar[str] = schema_id("verify")
    report: ProxyComparisonReport
    allow_skipped: bool = False

    @property
    def passed(self) -> bool:
        return self.report.passed(self.allow_skipped)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.passed else EXIT_VERIFY_FAILED

    def as_json(self) -> dict[str, Any]:
        return self.report.as_json()


@dataclass
class HistoryResult:
    """``history``: every recorded run, newest first."""

    SCHEMA: ClassVar[str] = schema_id("history")
    history: History
    exit_code: int = EXIT_OK

    def as_json(self) -> dict[str, Any]:
        return {"schema": self.SCHEMA, **self.history.as_dict()}


@dataclass
class UnlockResult:
    """``unlock``: the expired lock released, or ``None`` when no lock was held."""

    SCHEMA: ClassVar[str] = schema_id("unlock")
    run: UnlockRun
    exit_code: int = EXIT_OK

    def as_json(self) -> dict[str, Any]:
        return {"schema": self.SCHEMA, **self.run.as_dict()}


@dataclass
class NewResult:
    """``new``: the migration file written."""

    SCHEMA: ClassVar[str] = schema_id("new")
    path: Path
    folder: Path
    copied: list[Path] = field(default_factory=list)  # bundled files copied into a new folder
    exit_code: int = EXIT_OK

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "path": str(self.path),
            "copied": [str(p) for p in self.copied],
        }


# ---------------------------------------------------------------------------------------
# Shared steps


def _lock_ttl(settings: Settings) -> float:
    from layra_migrate.engine.lock import TTL_ENV, ttl_from_env

    return ttl_from_env(settings.env.get(TTL_ENV))


def _plan_path(plan: str | Path | None) -> Path:
    if plan is not None:
        return Path(plan)
    if DEFAULT_PLAN.is_file():
        return DEFAULT_PLAN
    raise ConfigError(
        "no plan given and no ./plan.yaml",
        hint="write one with `layra-migrate audit --plan-out plan.yaml`, review "
        "it, then pass --plan plan.yaml",
    )


def _ask(confirm: Confirm, question: str, expected: str | None = None) -> None:
    if not confirm(question, expected):
        raise RefusedError("not confirmed; nothing was written")


async def _check_redis(url: str | None) -> CacheGate:
    """Redis as the real run will use it: connected, and checked for the DB that holds
    Layra's cache (the same for a dry run)."""
    from layra_migrate.engine.cache import open_checked

    return await open_checked(url)


def _redis_refusal(gate: CacheGate) -> LayraMigrateError | None:
    """What stops a real run at Redis: unreachable (exit 3) or the wrong DB (exit 4)."""
    if gate.unreachable is not None:
        return gate.unreachable
    if gate.wrong_db:
        return RefusedError(
            gate.wrong_db + "; nothing was written",
            hint="pass --redis-url with the DB that holds them",
        )
    return None


_NO_REDIS_WARNING = (
    "no --redis-url: Layra's cached model configs (conv_model_config:*, model_config:*) "
    "will not be cleared and may serve the old URL for up to 15 minutes after the write"
)


def _where(settings: Settings, database: str) -> str:
    """``database D on <masked URI>``: what a prompt names as its target."""
    from layra_migrate import redact

    uri = settings.mongo_uri.value
    shown = str(redact.mask_url(uri)) if uri else "(no URI)"
    return f"database {database!r} on {shown}"


async def _pending_ids(db: Any, migrations: Any) -> list[str]:
    """The migrations a rewrite would run now (pending, interrupted, rolled back)."""
    from layra_migrate.engine.ledger import NEEDS_UP, Ledger, LedgerState

    states = await Ledger(db).states()
    return [
        m.id
        for m in migrations
        if (states[m.id].state if m.id in states else LedgerState.PENDING) in NEEDS_UP
    ]


def _rewrite_question(
    settings: Settings,
    database: str,
    pre: Preflight,
    pending: list[str],
    accept_changed: str | None,
) -> str:
    models = len(pre.to_write)
    parts = [
        f"Rewrite {pre.references} proxied reference(s) of {models} model name(s) in "
        f"{_where(settings, database)}",
        f"migration(s): {', '.join(pending) if pending else 'none pending'}",
    ]
    if pre.blocking:
        left = sum(b.references for b in pre.blocking)
        parts.append(f"{left} reference(s) of {len(pre.blocking)} name(s) stay on the proxy")
    if accept_changed:
        parts.append(f"accepting the changed file of {accept_changed}")
    return "; ".join(parts) + ". Proceed?"


def _rollback_question(settings: Settings, database: str, preview: RollbackRun) -> str:
    ids = [m.id for m in preview.migrations]
    restores = sum(s.restored for s in preview.stats.values())
    conflicts = preview.conflict_count
    what = ", ".join(ids) if ids else "nothing (no applied migration)"
    text = f"Roll back {what} in {_where(settings, database)}: {restores} document(s) to restore"
    forced = sum(s.forced for s in preview.stats.values())
    if forced:
        text += (
            f", {forced} of them changed since the migration (conflicts) and OVERWRITTEN "
            "with --force (their later edits to migrated fields are lost)"
        )
    if conflicts:
        text += f", {conflicts} conflict(s) changed since the migration, left alone"
    return text + ". Proceed?"


def _docker_host(client: Any, given: bool) -> str:
    """The Docker engine a prompt names: ``DOCKER_HOST`` (masked), unless the caller
    passed its own client (then the client's address)."""
    from layra_migrate import redact
    from layra_migrate.decommission.client import docker_host

    def shown(url: str) -> str:  # unix:///path stays as written; credentials are masked
        return str(redact.mask_url(url)) if "@" in url or "?" in url else redact.scrub(url)

    if not given:
        return f"Docker host {shown(docker_host())}"
    base = getattr(getattr(client, "api", None), "base_url", None)
    return f"Docker host {shown(str(base))}" if base else "the given Docker client"


def _decommission_question(client: Any, given: bool, result: RunResult, opts: Any) -> str:
    names = ", ".join(c.name for c in result.containers) or "no container"
    action = "stops, archives and REMOVES" if opts.remove else "stops and archives"
    text = (
        f"This {action} the {result.project!r} stack on {_docker_host(client, given)}: "
        f"{len(result.containers)} container(s) ({names}), {len(result.volumes)} volume(s)"
    )
    if opts.remove_volumes:
        text += " (volumes REMOVED after the archive is verified)"
    text += f"; archive: {opts.archive_dir}"
    if opts.force:
        text += f"; FORCED past the interlock ({opts.reason})"
    return text + "."


def _restore_question(
    client: Any, given: bool, root: Path, manifest: dict[str, Any], project: str
) -> str:
    containers = manifest.get("containers") or []
    names = ", ".join(str(c.get("name")) for c in containers if isinstance(c, dict))
    volumes = manifest.get("volumes") or []
    return (
        f"This restores the {project!r} stack on {_docker_host(client, given)} from {root}: "
        f"{len(containers)} container(s) ({names or 'none'}), {len(volumes)} volume(s)."
    )


async def _open_cache(url: str | None, dry_run: bool) -> RedisCache | None:
    """Redis for a writing run, before any MongoDB write: exit 3 unreachable, exit 4 when
    the chosen DB holds none of Layra's cache keys but another DB does."""
    if not url or dry_run:
        return None
    gate = await _check_redis(url)
    refusal = _redis_refusal(gate)
    if refusal is not None:
        await gate.close()
        raise refusal
    return gate.cache


async def _warn_if_backend_runs(hooks: Hooks) -> None:
    """Layra's editor autosaves whole workflows: warn when its backend still runs."""
    import asyncio

    def probe() -> list[str]:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return [
                c.name
                for c in client.containers.list(filters={"status": "running"})
                if "layra-backend" in c.name or "layra-frontend" in c.name
            ]
        finally:
            client.close()

    try:
        names = await asyncio.wait_for(asyncio.to_thread(probe), 3)
    except Exception:  # noqa: BLE001 - Docker is optional here
        return
    if names:
        hooks.warn(
            f"Layra is running ({', '.join(names)}): stop its backend and frontend "
            "during the rewrite, or autosaves may overwrite migrated workflows"
        )


# ---------------------------------------------------------------------------------------
# The commands


async def audit(
    settings: Settings,
    *,
    proxy_urls: Iterable[str] = (),
    plan_out: str | Path | None = None,
    hooks: Hooks = _QUIET,
    litellm_db_container: str | None = None,
    litellm_env_file: str | Path | None = None,
) -> AuditResult:
    """Report where every model configuration points; read-only for Layra's data.

    Resolves proxied names through ``settings.litellm_config`` when set, in the proxy's
    own environment (``litellm_env_file``, else the ``.env`` beside the compose file
    holding the config, else the tool's environment: litellm/proxy_env.py), marks the
    names the proxy's own database defines (``litellm_db_container``, or found through
    Docker: litellm/proxy_db.py), and writes the reviewable plan to ``plan_out`` when
    given.
    """
    from layra_migrate.audit import run_audit
    from layra_migrate.litellm.config import load_config
    from layra_migrate.litellm.proxy_db import mark_proxy_db_models
    from layra_migrate.mongo import connect
    from layra_migrate.plan import plan_from_report, write_plan
    from layra_migrate.proxy import ProxySet

    proxies = ProxySet.build(list(proxy_urls))
    config_path = settings.litellm_config.value
    config = load_config(config_path) if config_path else None
    proxy_env = None
    if config is None:
        hooks.warn("no --litellm-config: proxied names are listed but not resolved")
    else:
        from layra_migrate.litellm.proxy_env import load_proxy_environment

        proxy_env = load_proxy_environment(
            litellm_env_file,
            config.path,
            config.environment_variables,
            settings.env.get,
            required=litellm_env_file is not None,
        )
    async with connect(settings) as conn:
        with hooks.progress() as progress:
            report = await run_audit(
                conn.db, proxies, config, settings.env, proxy_env, progress=progress
            )
    proxy_db = mark_proxy_db_models(report, config, litellm_db_container)
    written = write_plan(plan_from_report(report), plan_out) if plan_out else None
    return AuditResult(report, written, proxy_db=proxy_db)


async def rewrite(
    settings: Settings,
    *,
    plan: str | Path | None = None,
    dry_run: bool = False,
    skip_unresolved: bool = False,
    accept_changed: str | None = None,
    reason: str | None = None,
    batch_size: int = 500,
    summary: bool = False,
    out: str | Path | None = None,
    confirm: Confirm = no_confirmation,
    hooks: Hooks = _QUIET,
    stop: StopFlag | None = None,
) -> RewriteResult:
    """Apply pending migrations: point proxied model configs straight at their providers.

    Preflight (the audit against the plan, key variables, Layra's unique-name rule, the
    Redis DB) refuses before anything is written; Redis (``settings.redis_url``) is
    reached before the confirmation; every change is journaled before it is written;
    the cached model configs are deleted afterwards. ``dry_run`` writes nothing at all,
    asks nothing and never refuses: the result's ``dry_plan`` holds the summary, every
    blocker and the diff, and ``exit_code`` says what the real run would do (0 or 4);
    ``out`` writes that plan as JSON (keys masked); ``summary`` leaves the diff out of
    ``as_json()``.
    """
    from layra_migrate.engine.context import StopFlag
    from layra_migrate.engine.discovery import discover
    from layra_migrate.engine.preflight import preflight
    from layra_migrate.engine.runner import RunOptions, Store, apply
    from layra_migrate.mongo import connect
    from layra_migrate.plan import read_plan

    if (accept_changed is None) != (reason is None):
        raise UsageError("--accept-changed ID and --reason TEXT go together")
    if (summary or out is not None) and not dry_run:
        raise UsageError("--summary and --out go with --dry-run")
    migrations = discover(settings.migrations_dir.value)
    plan_path = _plan_path(plan)
    the_plan = read_plan(plan_path)
    stop = stop or StopFlag()
    async with connect(settings) as conn:
        with hooks.progress() as progress:
            pre = await preflight(
                conn.db,
                the_plan,
                settings.env,
                skip_unresolved=skip_unresolved,
                collect=True,
                progress=progress,
            )
        gate = await _check_redis(settings.redis_url.value)  # the dry run checks it too
        cache = None if dry_run else gate.cache
        if not dry_run:
            refusal = pre.refusal() or _redis_refusal(gate)
            if refusal is not None:
                await gate.close()
                raise refusal
            hooks.rewrite_preflight(pre, the_plan, plan_path)
        try:
            if not dry_run:
                pending = await _pending_ids(conn.db, migrations)
                if pending:
                    await _warn_if_backend_runs(hooks)
                    if cache is None:
                        hooks.warn(_NO_REDIS_WARNING)
                if pending or accept_changed:  # else nothing is written: nothing to ask
                    _ask(
                        confirm,
                        _rewrite_question(settings, conn.db.name, pre, pending, accept_changed),
                    )
            hooks.writing(stop)
            with hooks.progress() as progress:
                options = RunOptions(
                    dry_run=dry_run,
                    batch_size=batch_size,
                    lock_ttl_s=_lock_ttl(settings),
                    stop=stop,
                    cache=cache,
                    command="rewrite",
                )
                if progress is not None:
                    options.progress = progress
                result = await apply(
                    Store(conn.db, conn.client, conn.topology.transactions),
                    migrations,
                    plan=pre.plan or the_plan,
                    keys=pre.keys,
                    options=options,
                    accept_changed={accept_changed: reason or ""} if accept_changed else None,
                )
        finally:
            await gate.close()
    dry_plan = None
    if dry_run:
        from layra_migrate.dryrun import build, write_out

        dry_plan = build(
            str(settings.db.value),
            str(plan_path),
            pre,
            result.changes,
            len(result.cache_keys),
            gate,
        )
        if out is not None:
            write_out(dry_plan, out)
    return RewriteResult(settings.db.value, dry_run, plan_path, pre, result, dry_plan, summary)


async def rollback(
    settings: Settings,
    *,
    to: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    batch_size: int = 500,
    confirm: Confirm = no_confirmation,
    hooks: Hooks = _QUIET,
    stop: StopFlag | None = None,
) -> RollbackResult:
    """Restore the journal's before-images of the newest applied migration (with ``to``:
    that one and every later one). Conflicting documents are left alone and listed
    (``exit_code`` 6) unless ``force``."""
    from layra_migrate.engine.context import StopFlag
    from layra_migrate.engine.discovery import discover
    from layra_migrate.engine.runner import RunOptions, Store
    from layra_migrate.engine.runner import rollback as do_rollback
    from layra_migrate.mongo import connect
    from layra_migrate.progress import NullProgress

    migrations = discover(settings.migrations_dir.value)
    stop = stop or StopFlag()
    redis_problem: LayraMigrateError | None = None
    confirmed: list[str] | None = None  # the migrations the person said yes to
    async with connect(settings) as conn:
        if dry_run:  # the same Redis check as the real run; reported, never refused
            gate = await _check_redis(settings.redis_url.value)
            await gate.close()
            redis_problem = _redis_refusal(gate)
        cache = await _open_cache(settings.redis_url.value, dry_run)
        try:
            if not dry_run:
                if cache is None:
                    hooks.warn(_NO_REDIS_WARNING)
                if confirm is not assume_yes:
                    # What the prompt names: the migrations, the documents, the conflicts
                    # (a read-only scan: the dry run of this same rollback).
                    with hooks.progress() as progress:
                        preview = await do_rollback(
                            Store(conn.db, conn.client, conn.topology.transactions),
                            migrations,
                            to=to,
                            force=force,
                            options=RunOptions(
                                dry_run=True,
                                batch_size=batch_size,
                                stop=stop,
                                command="rollback",
                                progress=progress if progress is not None else NullProgress(),
                            ),
                        )
                    confirmed = [m.id for m in preview.migrations]
                    if confirmed:  # else nothing is written: nothing to ask
                        _ask(confirm, _rollback_question(settings, conn.db.name, preview))
            hooks.writing(stop)
            with hooks.progress() as progress:
                options = RunOptions(
                    dry_run=dry_run,
                    batch_size=batch_size,
                    lock_ttl_s=_lock_ttl(settings),
                    stop=stop,
                    cache=cache,
                    command="rollback",
                )
                if progress is not None:
                    options.progress = progress
                result = await do_rollback(
                    Store(conn.db, conn.client, conn.topology.transactions),
                    migrations,
                    to=to,
                    force=force,
                    options=options,
                    expect=confirmed,
                )
        finally:
            if cache is not None:
                await cache.close()
    return RollbackResult(settings.db.value, dry_run, force, result, redis_problem)


async def status(settings: Settings) -> StatusResult:
    """Every migration's state (applied, pending, ...), who ran it and when, and the lock.
    Read-only."""
    from layra_migrate.engine.discovery import discover
    from layra_migrate.engine.runner import status as read_status
    from layra_migrate.mongo import connect

    migrations = discover(settings.migrations_dir.value)
    async with connect(settings) as conn:
        report = await read_status(conn.db, migrations)
    return StatusResult(report)


async def history(settings: Settings, *, limit: int | None = None) -> HistoryResult:
    """Every recorded run (rewrite, rollback with --force or not, accepted changes,
    decommission, restore): who, when (UTC), how long, counts, outcome; newest first.
    Read-only."""
    from layra_migrate.history import read_history
    from layra_migrate.mongo import connect

    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    async with connect(settings) as conn:
        found = await read_history(conn.db, limit=limit)
    return HistoryResult(found)


async def check(
    settings: Settings,
    *,
    plan: str | Path | None = None,
    scratch_db: str | None = None,
    batch_size: int = 500,
    hooks: Hooks = _QUIET,
    stop: StopFlag | None = None,
) -> CheckResult:
    """Prove reversibility (up, down, up, up) on a scratch copy; the real collections
    are only read. Blocking names stay on the proxy in the check; a missing key
    variable gets a placeholder (scratch only)."""
    from layra_migrate.engine.check import run_check
    from layra_migrate.engine.context import StopFlag
    from layra_migrate.engine.discovery import discover
    from layra_migrate.engine.preflight import preflight
    from layra_migrate.engine.runner import RunOptions
    from layra_migrate.mongo import connect
    from layra_migrate.plan import read_plan

    migrations = discover(settings.migrations_dir.value)
    the_plan = read_plan(_plan_path(plan))
    stop = stop or StopFlag()
    async with connect(settings) as conn:
        with hooks.progress() as progress:
            pre = await preflight(
                conn.db,
                the_plan,
                settings.env,
                skip_unresolved=True,
                keys_required=False,
                progress=progress,
            )
        for b in pre.blocking:
            hooks.info(
                f"blocking (left on the proxy in the check): {b.model_name} "
                f"({b.references}): {b.reason}"
            )
        if pre.placeholder_keys:
            hooks.warn(
                "key variable(s) not set, placeholders used on the scratch copy: "
                + ", ".join(pre.placeholder_keys)
            )
        hooks.writing(stop)
        with hooks.progress() as progress:
            options = RunOptions(
                batch_size=batch_size,
                lock_ttl_s=_lock_ttl(settings),
                stop=stop,
                command="check",
            )
            if progress is not None:
                options.progress = progress
            result = await run_check(
                conn.client,
                conn.db,
                migrations,
                plan=pre.plan or the_plan,
                keys=pre.keys,
                options=options,
                scratch_name=scratch_db,
            )
    return CheckResult(settings.db.value, pre, result)


def new(settings: Settings, name: str) -> NewResult:
    """Scaffold the next migration file (``NNNN_name.py``) in ``settings.migrations_dir``
    (default: ``./migrations`` of the operator's project; never the installed package),
    numbered after the highest bundled or project migration."""
    from layra_migrate.engine.scaffold import PROJECT_DIR, create

    folder = Path(settings.migrations_dir.value or PROJECT_DIR)
    done = create(folder, name)
    return NewResult(done.path, folder, done.copied)


async def unlock(settings: Settings, *, if_stale: bool) -> UnlockResult:
    """Release a crashed run's expired lock; a live lock is never released (refused,
    exit 4). ``if_stale`` must be true: it is the only mode."""
    from layra_migrate.engine.lock import unlock_if_stale
    from layra_migrate.mongo import connect

    if not if_stale:
        raise UsageError("unlock only releases an expired lock: pass --if-stale")
    async with connect(settings) as conn:
        result = await unlock_if_stale(conn.db)
    if result.held is not None:
        raise RefusedError(
            f"the lock is live, not released: {result.held.describe()}",
            hint="wait for that run to finish or its lease to expire",
        )
    return UnlockResult(result)


def _check_probe_timeout(timeout_s: float) -> None:
    if not timeout_s > 0:
        raise UsageError("--probe-timeout must be a positive number of seconds")


def _probe_progress(
    progress: Any,
) -> tuple[Callable[[list[VerifyTarget]], None], Callable[[ProbeResult], None]]:
    """The callbacks that show the probes as one progress step (no-ops when quiet)."""

    def on_targets(targets: list[VerifyTarget]) -> None:
        if progress is not None:
            progress.start("probing", len(targets))

    def on_result(_result: ProbeResult) -> None:
        if progress is not None:
            progress.advance("probing")

    return on_targets, on_result


async def verify(
    settings: Settings,
    *,
    plan: str | Path | None = None,
    concurrency: int = 8,
    timeout_s: float = 30.0,
    only: str | None = None,
    allow_skipped: bool = False,
    proxy_urls: Iterable[str] = (),
    hooks: Hooks = _QUIET,
) -> VerifyResult:
    """Send one real test chat to every provider target and record the run (never keys).

    With ``plan``: the targets the plan would write. Without: the distinct targets the
    database holds now; references still on the proxy count as not migrated
    (``proxy_urls`` adds spellings of the proxy; a plan lists its own).
    """
    from layra_migrate.mongo import connect
    from layra_migrate.plan import read_plan
    from layra_migrate.proxy import ProxySet
    from layra_migrate.verify import run_verify

    _check_probe_timeout(timeout_s)
    the_plan = read_plan(plan) if plan is not None else None
    proxies = the_plan.proxy if the_plan is not None else ProxySet.build(list(proxy_urls))
    with hooks.progress() as progress:
        on_targets, on_result = _probe_progress(progress)
        async with connect(settings) as conn:
            report = await run_verify(
                conn.db,
                settings.db.value or "",
                proxies=proxies,
                env=settings.env,
                plan=the_plan,
                only=only,
                concurrency=concurrency,
                timeout_s=timeout_s,
                allow_skipped=allow_skipped,
                on_targets=on_targets,
                on_result=on_result,
            )
    return VerifyResult(report, allow_skipped)


async def verify_against_proxy(
    settings: Settings,
    *,
    plan: str | Path,
    proxy_endpoint: str | None = None,
    concurrency: int = 8,
    timeout_s: float = 30.0,
    only: str | None = None,
    allow_skipped: bool = False,
    hooks: Hooks = _QUIET,
) -> ProxyComparisonResult:
    """``verify --plan --against-proxy``: before the cut-over, send each proxied name's
    request through the running proxy and directly, and compare which upstream answered.

    ``proxy_endpoint`` replaces the proxy URL stored in Layra's documents (e.g. when the
    compose name does not resolve from here). Reads Layra's data only; records the
    comparison in ``layra_migrate_verify`` (never keys).
    """
    from layra_migrate.mongo import connect
    from layra_migrate.plan import read_plan
    from layra_migrate.verify.against_proxy import run_against_proxy

    _check_probe_timeout(timeout_s)
    the_plan = read_plan(plan)
    with hooks.progress() as progress:
        on_targets, on_result = _probe_progress(progress)
        async with connect(settings) as conn:
            report = await run_against_proxy(
                conn.db,
                settings.db.value or "",
                plan=the_plan,
                env=settings.env,
                proxy_endpoint=proxy_endpoint,
                only=only,
                concurrency=concurrency,
                timeout_s=timeout_s,
                allow_skipped=allow_skipped,
                on_targets=on_targets,
                on_result=on_result,
            )
    return ProxyComparisonResult(report, allow_skipped)


async def decommission(
    settings: Settings,
    *,
    project: str = "litellm",
    archive_dir: str | Path | None = None,
    dry_run: bool = False,
    remove: bool = False,
    remove_volumes: bool = False,
    force: bool = False,
    reason: str | None = None,
    proxy_urls: Iterable[str] = (),
    confirm: Confirm = no_confirmation,
    hooks: Hooks = _QUIET,
    docker_client: docker.DockerClient | None = None,
) -> DecommissionResult:
    """Stop, archive and optionally remove the LiteLLM stack, with a way back.

    The interlock runs first: while any Layra model configuration points at the proxy
    (the default spellings, ``proxy_urls`` and the stack's own proxy container names on
    the proxy port) nothing is stopped (RefusedError, exit 4) unless ``force`` with a
    ``reason``; MongoDB unreachable is exit 3 unless forced (then recorded as unchecked).
    A dry run returns the plan. Otherwise ``confirm`` is asked with the project name,
    the steps run (a failure before the archive is verified rolls the stack back: the
    result carries exit 5 or 130) and the run is recorded in MongoDB (best effort).
    Docker is reached through ``DOCKER_HOST`` unless ``docker_client`` is given.
    """
    from layra_migrate.decommission.archive import default_archive_dir
    from layra_migrate.decommission.client import connect as docker_connect
    from layra_migrate.decommission.discovery import discover, find_backends
    from layra_migrate.decommission.execute import Options, execute, new_result
    from layra_migrate.decommission.interlock import backend_warnings
    from layra_migrate.decommission.models import SecurityReport
    from layra_migrate.decommission.security import check_proxy, key_names_from_env
    from layra_migrate.proxy import DEFAULT_PROXY_PORT, ProxySet

    if remove_volumes and not remove:
        raise UsageError("--remove-volumes needs --remove")
    if force and not (reason and reason.strip()):
        raise UsageError("--force needs --reason TEXT (recorded in the archive and ledger)")
    if reason and not force:
        raise UsageError("--reason is only meaningful with --force")

    client = docker_client if docker_client is not None else docker_connect()
    stack = discover(client, project, with_sizes=True)
    extra = list(proxy_urls)
    for c in stack.by_role("proxy"):
        for host in {c.name, c.service} - {None}:
            extra.append(f"http://{host}:{DEFAULT_PROXY_PORT}/v1")
    proxies = ProxySet.build(extra)
    interlock = await _interlock(settings, proxies, force, reason)
    if interlock.via_proxy and not force:
        where = ", ".join(f"{k} {v}" for k, v in interlock.by_location.items() if v)
        raise RefusedError(
            f"{interlock.via_proxy} model configuration(s) still point at the proxy "
            f"({where}); nothing was stopped",
            hint="run `layra-migrate rewrite` first, or --force --reason TEXT",
        )

    opts = Options(
        project=project,
        archive_dir=Path(archive_dir or default_archive_dir()).expanduser().absolute(),
        dry_run=dry_run,
        remove=remove,
        remove_volumes=remove_volumes,
        force=force,
        reason=reason,
    )
    result = new_result(stack, opts)
    result.interlock = interlock
    result.warnings.extend(interlock.warnings)
    result.warnings.extend(backend_warnings(find_backends(client), proxies))
    proxy = next(iter(stack.by_role("proxy")), None)
    if dry_run:
        result.archive = str(opts.archive_dir)
        result.security = SecurityReport(
            proxy_image=proxy.image if proxy else None,
            key_names=key_names_from_env(proxy.env_names) if proxy else [],
            detail="installed litellm version not checked in a dry run",
        )
        return result
    security = check_proxy(client, proxy)
    result.security = security

    hooks.decommission_plan(result)
    _ask(
        confirm,
        _decommission_question(client, docker_client is not None, result, opts),
        project,
    )
    started = datetime.now(UTC)
    with hooks.progress() as meter:
        result = execute(
            client,
            stack,
            opts,
            result,
            security=security,
            interlock=interlock,
            progress=hooks.decommission_step,
            meter=meter,
        )
    await _record(settings, result, opts, started, hooks)
    return result


async def restore(
    settings: Settings,
    archive: str | Path,
    *,
    confirm: Confirm = no_confirmation,
    hooks: Hooks = _QUIET,
    docker_client: docker.DockerClient | None = None,
) -> DecommissionResult:
    """Undo a decommission from its archive.

    Every checksum is verified before anything is touched (a mismatch: exit 5). The
    run is recorded in MongoDB when it answers (never required).
    """
    from layra_migrate.decommission.client import connect as docker_connect
    from layra_migrate.decommission.restore import load_verified
    from layra_migrate.decommission.restore import restore as do_restore

    root = Path(archive)
    with hooks.progress() as progress:
        manifest = load_verified(root, progress)
    project = str(manifest.get("project") or "")
    hooks.info(f"archive {root}: every checksum matches")
    client = docker_client if docker_client is not None else docker_connect()
    _ask(
        confirm,
        _restore_question(client, docker_client is not None, root, manifest, project),
        project,
    )
    started = datetime.now(UTC)
    result = do_restore(client, root, manifest)
    await _record(settings, result, None, started, hooks)
    return result


async def _interlock(
    settings: Settings, proxies: ProxySet, force: bool, reason: str | None
) -> InterlockReport:
    """MongoDB unreachable: exit 3, unless --force --reason (then recorded as unchecked)."""
    from layra_migrate.decommission.interlock import count_references
    from layra_migrate.decommission.models import InterlockReport
    from layra_migrate.errors import UnreachableError
    from layra_migrate.mongo import connect

    try:
        async with connect(settings) as conn:
            report = await count_references(conn.db, settings.env, proxies)
    except UnreachableError as exc:
        if not force:
            raise
        report = InterlockReport(
            checked=False,
            warnings=[f"interlock not checked: {exc.message}; proceeding because of --force"],
        )
    report.forced = force
    report.reason = reason
    return report


async def _record(
    settings: Settings, result: RunResult, opts: Any, started: datetime, hooks: Hooks
) -> None:
    """One ledger record per run in layra_migrate_decommission (best effort)."""
    from layra_migrate import redact, toolstate
    from layra_migrate.engine.lock import whoami
    from layra_migrate.mongo import connect

    finished = datetime.now(UTC)
    doc: dict[str, Any] = {
        "kind": "decommission" if opts is not None else "restore",
        "project": result.project,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_s": round((finished - started).total_seconds(), 3),
        "by": whoami(),
        "error": result.error,
        "archive": result.archive,
        "archive_verified": result.archive_verified,
        "rolled_back": result.rolled_back,
        "exit_code": result.exit_code,
        "steps": [s.as_dict() for s in result.steps],
        "containers": [c.as_dict() for c in result.containers],
        "interlock": result.interlock.as_dict() if result.interlock else None,
    }
    if opts is not None:
        doc.update(
            {
                "forced": opts.force,
                "reason": opts.reason,
                "remove": opts.remove,
                "remove_volumes": opts.remove_volumes,
            }
        )
    doc = redact.scrub_obj(doc)
    try:
        async with connect(settings) as conn:
            await conn.db[toolstate.DECOMMISSION_RUNS].insert_one(doc)
    except Exception as exc:  # noqa: BLE001 - the archive manifest holds the same facts
        hooks.warn(
            f"could not record the run in MongoDB ({exc.__class__.__name__}); "
            "the output above is the record"
        )


__all__ = [
    "DEFAULT_PLAN",
    "AuditResult",
    "CheckResult",
    "DecommissionResult",
    "Confirm",
    "HistoryResult",
    "Hooks",
    "NewResult",
    "RewriteResult",
    "RollbackResult",
    "StatusResult",
    "UnlockResult",
    "VerifyResult",
    "ProxyComparisonResult",
    "assume_yes",
    "audit",
    "check",
    "decommission",
    "history",
    "new",
    "no_confirmation",
    "restore",
    "rewrite",
    "rollback",
    "schema_id",
    "status",
    "unlock",
    "verify",
    "verify_against_proxy",
]
