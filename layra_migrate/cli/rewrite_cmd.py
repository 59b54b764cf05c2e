"""`layra-migrate rewrite | rollback | status | check | new | unlock`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from layra_migrate.cli.app import app
from layra_migrate.cli.common import (
    DbOpt,
    DebugOpt,
    DryRunOpt,
    EnvFileOpt,
    JsonOpt,
    MigrationsDirOpt,
    MongoUriOpt,
    PlanOpt,
    RedisUrlOpt,
    TimeoutOpt,
    VerboseOpt,
    YesOpt,
    confirm,
    make_output,
    run,
    show_settings,
)
from layra_migrate.errors import EXIT_CONFLICTS, EXIT_UNREACHABLE, EXIT_VERIFY_FAILED

if TYPE_CHECKING:
    from layra_migrate.engine.context import StopFlag
    from layra_migrate.render import Output
    from layra_migrate.settings import Settings

DEFAULT_PLAN = Path("plan.yaml")
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, max=10_000,
                                       help="Documents per journaled write batch.")]


def _schema(command: str) -> str:
    return f"layra-migrate/{command}/v1"


def _settings(output: Output, **kw: Any) -> Settings:
    from layra_migrate.settings import load_settings

    args: dict[str, Any] = {k: (str(v) if isinstance(v, Path) else v) for k, v in kw.items()}
    settings = load_settings(**args)
    show_settings(output, settings)
    return settings


def _lock_ttl(settings: Settings) -> float:
    from layra_migrate.engine.lock import TTL_ENV, ttl_from_env

    return ttl_from_env(settings.env.get(TTL_ENV))


def _plan_path(plan: Path | None) -> Path:
    from layra_migrate.errors import ConfigError

    if plan is not None:
        return plan
    if DEFAULT_PLAN.is_file():
        return DEFAULT_PLAN
    raise ConfigError("no plan given and no ./plan.yaml",
                      hint="write one with `layra-migrate audit --plan-out plan.yaml`, review "
                           "it, then pass --plan plan.yaml")


def _install_stop(stop: StopFlag, output: Output) -> None:
    """First Ctrl-C / SIGTERM: finish the current batch and stop. A second Ctrl-C stops
    at once (still safe: the journal settles an interrupted batch on the next run)."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()

    def request(sig: signal.Signals) -> None:
        stop.set()
        output.warn(f"{sig.name}: stopping after the current batch (again to stop at once)")
        loop.remove_signal_handler(signal.SIGINT)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, request, sig)
        except (NotImplementedError, RuntimeError):
            pass


async def _warn_if_backend_runs(output: Output) -> None:
    """Layra's editor autosaves whole workflows: warn when its backend still runs."""
    import asyncio

    def probe() -> list[str]:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return [c.name for c in client.containers.list(filters={"status": "running"})
                    if "layra-backend" in c.name or "layra-frontend" in c.name]
        finally:
            client.close()

    try:
        names = await asyncio.wait_for(asyncio.to_thread(probe), 3)
    except Exception:  # noqa: BLE001 - Docker is optional here
        return
    if names:
        output.warn(f"Layra is running ({', '.join(names)}): stop its backend and frontend "
                    "during the rewrite, or autosaves may overwrite migrated workflows")


async def _open_cache(url: str | None, dry_run: bool) -> Any:
    if not url or dry_run:
        return None
    from layra_migrate.engine.cache import RedisCache

    cache = RedisCache(url)
    await cache.connect()  # exit 3 here, before any MongoDB write
    return cache


def _cache_exit(cache_result: Any, output: Output) -> int:
    """Keys that could not be deleted after the write: named on stderr, exit 3."""
    if cache_result is None or not cache_result.failed:
        return 0
    output.err.print(f"[red]error:[/] the MongoDB write is done, but {len(cache_result.failed)} "
                     f"cached key(s) could not be deleted from Redis ({cache_result.error}): "
                     + " ".join(cache_result.failed), soft_wrap=True)
    return EXIT_UNREACHABLE


@app.command()
def rewrite(
    plan: PlanOpt = None,
    dry_run: DryRunOpt = False,
    skip_unresolved: Annotated[bool, typer.Option(
        "--skip-unresolved", help="Leave unresolved proxied names on the proxy instead of "
        "refusing.")] = False,
    redis_url: RedisUrlOpt = None,
    yes: YesOpt = False,
    accept_changed: Annotated[str | None, typer.Option(
        "--accept-changed", metavar="ID", help="Accept that applied migration ID's file changed "
        "(needs --reason; recorded in the ledger).", show_default=False)] = None,
    reason: Annotated[str | None, typer.Option(
        "--reason", help="Why the changed file is accepted.", show_default=False)] = None,
    migrations_dir: MigrationsDirOpt = None,
    batch_size: BatchOpt = 500,
    mongo_uri: MongoUriOpt = None,
    db: DbOpt = None,
    env_file: EnvFileOpt = None,
    timeout: TimeoutOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Apply pending migrations: point proxied model configs straight at their providers.

    Audits the database against the plan first. Refuses (exit 4, nothing written) a
    stale plan, blocking names without --skip-unresolved, a missing key variable, a
    held lock or an edited applied migration. Every change is journaled before it is
    written, so `rollback` restores the exact original. --dry-run prints every
    per-document change (keys masked) and writes nothing at all.

    Example:

    \b
        layra-migrate rewrite --plan plan.yaml --env-file /srv/layra/.env --dry-run
        layra-migrate rewrite --plan plan.yaml --env-file /srv/layra/.env --redis-url redis://:PASS@localhost:6379/0

    Exit codes: 0 done, 2 bad input or no --yes without a terminal, 3 MongoDB/Redis
    unreachable (or cached keys not deleted), 4 refused, 5 post-condition failed,
    130 interrupted (resumable: run rewrite again).
    """
    output = make_output(json_out, verbose, debug)

    async def body() -> int:
        from layra_migrate.engine.context import StopFlag
        from layra_migrate.engine.discovery import discover
        from layra_migrate.engine.preflight import preflight
        from layra_migrate.engine.runner import RunOptions, Store, apply
        from layra_migrate.errors import UsageError
        from layra_migrate.mongo import connect
        from layra_migrate.plan import read_plan
        from layra_migrate.views.rewrite import (
            RichProgress,
            render_apply,
            render_cache,
            render_changes,
            render_preflight,
        )

        if (accept_changed is None) != (reason is None):
            raise UsageError("--accept-changed ID and --reason TEXT go together")
        settings = _settings(output, mongo_uri=mongo_uri, db=db, env_file=env_file,
                             timeout_s=timeout, redis_url=redis_url,
                             migrations_dir=migrations_dir)
        migrations = discover(settings.migrations_dir.value)
        plan_path = _plan_path(plan)
        the_plan = read_plan(plan_path)
        stop = StopFlag()
        async with connect(settings) as conn:
            pre = await preflight(conn.db, the_plan, settings.env,
                                  skip_unresolved=skip_unresolved)
            if not output.json_mode:
                render_preflight(pre, the_plan, output, str(plan_path))
            cache = await _open_cache(settings.redis_url.value, dry_run)
            try:
                if not dry_run:
                    await _warn_if_backend_runs(output)
                    confirm(output, f"Rewrite {pre.references} proxied reference(s) in "
                                    f"{conn.db.name}?", yes=yes)
                _install_stop(stop, output)
                with RichProgress(output) as progress:
                    options = RunOptions(dry_run=dry_run, batch_size=batch_size,
                                         lock_ttl_s=_lock_ttl(settings), progress=progress,
                                         stop=stop, cache=cache, command="rewrite")
                    result = await apply(Store(conn.db, conn.client, conn.topology.transactions),
                                         migrations, plan=the_plan, keys=pre.keys,
                                         options=options,
                                         accept_changed={accept_changed: reason or ""}
                                         if accept_changed else None)
            finally:
                if cache is not None:
                    await cache.close()
        code = _cache_exit(result.cache, output)
        if output.json_mode:
            output.emit_json({
                "schema": _schema("rewrite"), "database": settings.db.value,
                "dry_run": dry_run, "plan": str(plan_path), "preflight": pre.as_dict(),
                "skipped_unresolved": [b.model_name for b in pre.blocking],
                "migrations": [m.as_dict() for m in result.migrations],
                "documents": result.documents,
                "changes": [c.as_dict() for c in result.changes] if dry_run else None,
                "accepted_changes": result.accepted,
                "lock_taken_over": result.took_over.as_dict() if result.took_over else None,
                "redis": (result.cache.as_dict() if result.cache else
                          {"keys": len(result.cache_keys), "deleted": 0, "failed": [],
                           "redis_url": None, "error": None}),
                "exit_code": code,
            })
            return code
        if dry_run:
            render_changes(result.changes, output)
        render_apply(result, output)
        render_cache(result.cache, len(result.cache_keys), output, dry_run)
        if dry_run:
            output.next_step("review the changes, then run the same command without --dry-run")
        elif code:
            output.next_step("delete the listed Redis keys by hand (or wait 15 minutes)")
        else:
            output.next_step("`layra-migrate verify` to test the direct targets; "
                             "`layra-migrate rollback` undoes this exactly")
        return code

    run("rewrite", output, body)


@app.command()
def rollback(
    to: Annotated[str | None, typer.Option(
        "--to", metavar="MIGRATION_ID", help="Roll back this migration and every later one "
        "(default: only the newest applied).", show_default=False)] = None,
    dry_run: DryRunOpt = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Also restore documents changed since the migration (conflicts).")]
    = False,
    redis_url: RedisUrlOpt = None,
    yes: YesOpt = False,
    migrations_dir: MigrationsDirOpt = None,
    batch_size: BatchOpt = 500,
    mongo_uri: MongoUriOpt = None,
    db: DbOpt = None,
    env_file: EnvFileOpt = None,
    timeout: TimeoutOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Restore the journal's before-images of the newest applied migration.

    Before restoring a document it checks that the migrated fields still hold what
    the migration wrote. A document changed since (a conflict) is left alone and
    listed; the migration is marked partially rolled back (exit 6). --force restores
    conflicting documents too. Fields the migration did not touch are never written.

    Example:

    \b
        layra-migrate rollback --env-file /srv/layra/.env --dry-run
        layra-migrate rollback --env-file /srv/layra/.env --yes

    Exit codes: 0 done, 2 bad input, 3 MongoDB/Redis unreachable, 4 lock held,
    6 conflicts (partially rolled back), 130 interrupted (run rollback again).
    """
    output = make_output(json_out, verbose, debug)

    async def body() -> int:
        from layra_migrate.engine.context import StopFlag
        from layra_migrate.engine.discovery import discover
        from layra_migrate.engine.runner import RunOptions, Store
        from layra_migrate.engine.runner import rollback as do_rollback
        from layra_migrate.mongo import connect
        from layra_migrate.views.rewrite import RichProgress, render_cache, render_rollback

        settings = _settings(output, mongo_uri=mongo_uri, db=db, env_file=env_file,
                             timeout_s=timeout, redis_url=redis_url,
                             migrations_dir=migrations_dir)
        migrations = discover(settings.migrations_dir.value)
        stop = StopFlag()
        async with connect(settings) as conn:
            cache = await _open_cache(settings.redis_url.value, dry_run)
            try:
                if not dry_run:
                    what = f"migration {to} and later ones" if to else "the newest migration"
                    confirm(output, f"Roll back {what} in {conn.db.name}?", yes=yes)
                _install_stop(stop, output)
                with RichProgress(output) as progress:
                    options = RunOptions(dry_run=dry_run, batch_size=batch_size,
                                         lock_ttl_s=_lock_ttl(settings), progress=progress,
                                         stop=stop, cache=cache, command="rollback")
                    result = await do_rollback(
                        Store(conn.db, conn.client, conn.topology.transactions), migrations,
                        to=to, force=force, options=options)
            finally:
                if cache is not None:
                    await cache.close()
        cache_code = _cache_exit(result.cache, output)
        code = EXIT_CONFLICTS if result.conflict_count else cache_code
        if output.json_mode:
            output.emit_json({
                "schema": _schema("rollback"), "database": settings.db.value,
                "dry_run": dry_run, "force": force,
                "migrations": [m.as_dict() | {"counts": result.stats[m.id].as_dict()}
                               for m in result.migrations],
                "restored": sum(s.restored for s in result.stats.values()),
                "conflict_count": result.conflict_count,
                "conflicts": [c.as_dict() for c in result.conflicts],
                "restores": [r.as_dict() for r in result.restores] if dry_run else None,
                "lock_taken_over": result.took_over.as_dict() if result.took_over else None,
                "redis": result.cache.as_dict() if result.cache else None,
                "exit_code": code,
            })
            return code
        render_rollback(result, output)
        keys = sum(len(s.cache_keys) for s in result.stats.values())
        render_cache(result.cache, keys, output, dry_run)
        if result.conflict_count:
            output.next_step("inspect the conflicting documents; `rollback --force` restores "
                             "them too (their later edits to migrated fields are lost)")
        elif result.migrations and not dry_run:
            output.next_step("`layra-migrate status` shows the ledger")
        return code

    run("rollback", output, body)


@app.command()
def status(
    migrations_dir: MigrationsDirOpt = None,
    mongo_uri: MongoUriOpt = None,
    db: DbOpt = None,
    env_file: EnvFileOpt = None,
    timeout: TimeoutOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Show applied, pending and partially rolled back migrations, and the lock. Read-only.

    For each migration: state, when and by whom (user@host) it last ran, how long,
    how many documents it changed, and its file checksum (flagged when the file
    changed after it was applied).

    Example:

    \b
        layra-migrate status --env-file /srv/layra/.env

    Exit codes: 0 done, 2 bad input, 3 MongoDB unreachable.
    """
    output = make_output(json_out, verbose, debug)

    async def body() -> int:
        from layra_migrate.engine.discovery import discover
        from layra_migrate.engine.runner import status as read_status
        from layra_migrate.mongo import connect
        from layra_migrate.views.rewrite import render_status

        settings = _settings(output, mongo_uri=mongo_uri, db=db, env_file=env_file,
                             timeout_s=timeout, migrations_dir=migrations_dir)
        migrations = discover(settings.migrations_dir.value)
        async with connect(settings) as conn:
            report = await read_status(conn.db, migrations)
        if output.json_mode:
            output.emit_json({"schema": _schema("status"), **report.as_dict()})
            return 0
        render_status(report, output)
        pending = [r.id for r in report.migrations if r.state != "applied"]
        if pending:
            output.next_step("`layra-migrate rewrite --plan plan.yaml --dry-run` to preview")
        return 0

    run("status", output, body)


@app.command()
def check(
    plan: PlanOpt = None,
    scratch_db: Annotated[str | None, typer.Option(
        "--scratch-db", help="Scratch database name (must be empty; dropped afterwards) "
        "[default: <db>_lmcheck_<random>]", show_default=False)] = None,
    migrations_dir: MigrationsDirOpt = None,
    batch_size: BatchOpt = 500,
    mongo_uri: MongoUriOpt = None,
    db: DbOpt = None,
    env_file: EnvFileOpt = None,
    timeout: TimeoutOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Prove reversibility on a scratch copy; the real collections are only read.

    Copies the application collections to a scratch database, fingerprints every
    document (content hash), then runs up -> down (must equal the original) -> up
    (must equal the first up) -> up once more (must change nothing), and drops the
    scratch database. Applies what `rewrite --skip-unresolved` would; blocking names
    are listed, not fatal. A missing key variable gets a placeholder (scratch only).

    Example:

    \b
        layra-migrate check --plan plan.yaml --env-file /srv/layra/.env --json

    Exit codes: 0 reversible, 2 bad input, 3 MongoDB unreachable, 4 stale plan or lock,
    5 not reversible (the first differing document is named).
    """
    output = make_output(json_out, verbose, debug)

    async def body() -> int:
        from layra_migrate.engine.check import run_check
        from layra_migrate.engine.context import StopFlag
        from layra_migrate.engine.discovery import discover
        from layra_migrate.engine.preflight import preflight
        from layra_migrate.engine.runner import RunOptions
        from layra_migrate.mongo import connect
        from layra_migrate.plan import read_plan
        from layra_migrate.views.rewrite import RichProgress, render_check

        settings = _settings(output, mongo_uri=mongo_uri, db=db, env_file=env_file,
                             timeout_s=timeout, migrations_dir=migrations_dir)
        migrations = discover(settings.migrations_dir.value)
        plan_path = _plan_path(plan)
        the_plan = read_plan(plan_path)
        async with connect(settings) as conn:
            pre = await preflight(conn.db, the_plan, settings.env, skip_unresolved=True,
                                  keys_required=False)
            for b in pre.blocking:
                output.info(f"blocking (left on the proxy in the check): {b.model_name} "
                            f"({b.references}): {b.reason}")
            if pre.placeholder_keys:
                output.warn("key variable(s) not set, placeholders used on the scratch copy: "
                            + ", ".join(pre.placeholder_keys))
            stop = StopFlag()
            _install_stop(stop, output)
            with RichProgress(output) as progress:
                options = RunOptions(batch_size=batch_size, lock_ttl_s=_lock_ttl(settings),
                                     progress=progress, stop=stop, command="check")
                result = await run_check(conn.client, conn.db, migrations, plan=the_plan,
                                         keys=pre.keys, options=options,
                                         scratch_name=scratch_db)
        code = 0 if result.ok else EXIT_VERIFY_FAILED
        if output.json_mode:
            output.emit_json({
                "schema": _schema("check"), "database": settings.db.value,
                "scratch_db": result.scratch_db, "ok": result.ok, "copied": result.copied,
                "original_hash": result.original, "steps": [s.as_dict() for s in result.steps],
                "first_difference": result.first_difference,
                "blocking": [b.as_dict() for b in pre.blocking],
                "placeholder_keys": pre.placeholder_keys, "exit_code": code,
            })
            return code
        render_check(result, output)
        if result.ok:
            output.next_step("`layra-migrate rewrite --plan ... --dry-run`")
        return code

    run("check", output, body)


@app.command()
def new(
    name: Annotated[str, typer.Argument(
        help="What the migration does, e.g. point_gemini_at_vertex")],
    migrations_dir: MigrationsDirOpt = None,
    env_file: EnvFileOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Scaffold the next migration file (NNNN_name.py) with the context API in its docstring.

    Example:

    \b
        layra-migrate new point_gemini_at_vertex --migrations-dir ./migrations

    Exit codes: 0 written, 2 bad name or the folder cannot be written.
    """
    output = make_output(json_out, debug=debug)

    async def body() -> int:
        from layra_migrate.engine.discovery import default_dir
        from layra_migrate.engine.scaffold import create

        settings = _settings(output, env_file=env_file, migrations_dir=migrations_dir)
        folder = Path(settings.migrations_dir.value) if settings.migrations_dir.value \
            else default_dir()
        path = create(folder, name)
        if output.json_mode:
            output.emit_json({"schema": _schema("new"), "path": str(path)})
        else:
            output.out.print(f"created {path}")
            output.next_step(f"write up(ctx) in {path.name}, then `layra-migrate check`")
        return 0

    run("new", output, body)


@app.command()
def unlock(
    if_stale: Annotated[bool, typer.Option(
        "--if-stale", help="Release the lock only if its lease expired (required).")] = False,
    mongo_uri: MongoUriOpt = None,
    db: DbOpt = None,
    env_file: EnvFileOpt = None,
    timeout: TimeoutOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Release a crashed run's expired lock; a live lock is never released.

    Example:

    \b
        layra-migrate unlock --if-stale --env-file /srv/layra/.env

    Exit codes: 0 released (or no lock), 2 without --if-stale, 3 MongoDB unreachable,
    4 the lock is live (held by a running process).
    """
    output = make_output(json_out, verbose, debug)

    async def body() -> int:
        from layra_migrate.engine.lock import unlock_if_stale
        from layra_migrate.errors import RefusedError, UsageError
        from layra_migrate.mongo import connect

        if not if_stale:
            raise UsageError("unlock only releases an expired lock: pass --if-stale")
        settings = _settings(output, mongo_uri=mongo_uri, db=db, env_file=env_file,
                             timeout_s=timeout)
        async with connect(settings) as conn:
            result = await unlock_if_stale(conn.db)
        if result.held is not None:
            raise RefusedError(f"the lock is live, not released: {result.held.describe()}",
                               hint="wait for that run to finish or its lease to expire")
        if output.json_mode:
            output.emit_json({"schema": _schema("unlock"), **result.as_dict()})
        elif result.released:
            output.out.print(f"released an expired lock: {result.released.describe()}")
            output.next_step("re-run the interrupted command; it resumes from the journal")
        else:
            output.out.print("no lock held")
        return 0

    run("unlock", output, body)
