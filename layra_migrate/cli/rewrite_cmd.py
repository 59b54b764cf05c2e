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
    make_output,
    run,
    show_settings,
)

if TYPE_CHECKING:
    from layra_migrate.engine.cache import CacheResult
    from layra_migrate.render import Output
    from layra_migrate.settings import Settings

BatchOpt = Annotated[
    int,
    typer.Option(
        "--batch-size", min=1, max=10_000, metavar="N", help="Documents per journaled write batch."
    ),
]


def _settings(output: Output, **kw: Any) -> Settings:
    from layra_migrate.settings import load_settings

    args: dict[str, Any] = {k: (str(v) if isinstance(v, Path) else v) for k, v in kw.items()}
    settings = load_settings(**args)
    show_settings(output, settings)
    return settings


def _render_cache_failure(cache_result: CacheResult | None, output: Output) -> None:
    """Keys that could not be deleted after the write: named on stderr (exit 3)."""
    if cache_result is None or not cache_result.failed:
        return
    output.err.print(
        f"[red]error:[/] the MongoDB write is done, but {len(cache_result.failed)} "
        f"cached key(s) could not be deleted from Redis ({cache_result.error}): "
        + " ".join(cache_result.failed),
        soft_wrap=True,
    )


@app.command()
def rewrite(
    plan: PlanOpt = None,
    dry_run: DryRunOpt = False,
    skip_unresolved: Annotated[
        bool,
        typer.Option(
            "--skip-unresolved",
            help="Leave blocking names (no target, key not set, a rename "
            "that duplicates a user's model name) on the proxy, listed, instead of refusing.",
        ),
    ] = False,
    redis_url: RedisUrlOpt = None,
    yes: YesOpt = False,
    accept_changed: Annotated[
        str | None,
        typer.Option(
            "--accept-changed",
            metavar="ID",
            help="Accept that applied migration ID's file changed "
            "(needs --reason; recorded in the ledger).",
            show_default=False,
        ),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason", metavar="TEXT", help="Why the changed file is accepted.", show_default=False
        ),
    ] = None,
    summary: Annotated[
        bool,
        typer.Option("--summary", help="With --dry-run: print only the summary and the blockers."),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="With --dry-run: write the whole plan (summary, "
            "blockers, diff; keys masked) as JSON to FILE.",
            show_default=False,
        ),
    ] = None,
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
    stale plan, blocking names (no target, key variable not set, a rename that would
    give a user two models with one name) without --skip-unresolved, Redis caching in
    another DB than the one given, a held lock or an edited applied migration. Every
    change is journaled before it is written, so `rollback` restores the exact original.
    --dry-run never refuses and writes nothing: it prints a summary, every blocker and
    the whole diff (keys masked), and exits 0 if the real run would proceed, 4 if it
    would be refused (--summary: the head only; --out FILE: the plan as JSON).

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
        from layra_migrate import commands
        from layra_migrate.cli.hooks import CliHooks, asker
        from layra_migrate.views.dryrun import render_dry_run
        from layra_migrate.views.rewrite import render_apply, render_cache

        settings = _settings(
            output,
            mongo_uri=mongo_uri,
            db=db,
            env_file=env_file,
            timeout_s=timeout,
            redis_url=redis_url,
            migrations_dir=migrations_dir,
        )
        result = await commands.rewrite(
            settings,
            plan=plan,
            dry_run=dry_run,
            skip_unresolved=skip_unresolved,
            accept_changed=accept_changed,
            reason=reason,
            batch_size=batch_size,
            summary=summary,
            out=out,
            confirm=asker(output, yes=yes),
            hooks=CliHooks(output),
        )
        code = result.exit_code
        _render_cache_failure(result.applied.cache, output)
        if output.json_mode:
            output.emit_json(result.as_json())
            return code
        applied = result.applied
        if result.dry_plan is not None:
            render_dry_run(result.dry_plan, output, summary_only=summary)
            render_apply(applied, output)  # which migrations would apply
            if out is not None:
                output.out.print(f"plan written to {out}")
            output.next_step(
                "review the plan, then run the same command without --dry-run"
                if code == 0
                else "resolve the blockers (or pass "
                "--skip-unresolved where they may stay on the proxy)"
            )
            return code
        render_apply(applied, output)
        render_cache(applied.cache, len(applied.cache_keys), output, dry_run)
        if code:
            output.next_step("delete the listed Redis keys by hand (or wait 15 minutes)")
        else:
            output.next_step(
                "`layra-migrate verify` to test the direct targets; "
                "`layra-migrate rollback` undoes this exactly"
            )
        return code

    run("rewrite", output, body)


@app.command()
def rollback(
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="MIGRATION_ID",
            help="Roll back this migration and every later one (default: only the newest applied).",
            show_default=False,
        ),
    ] = None,
    dry_run: DryRunOpt = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Also restore documents changed since the migration (conflicts)."
        ),
    ] = False,
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

    Exit codes: 0 done, 2 bad input, 3 MongoDB/Redis unreachable, 4 lock held or wrong
    Redis DB, 6 conflicts (partially rolled back), 130 interrupted (run rollback again).
    """
    output = make_output(json_out, verbose, debug)

    async def body() -> int:
        from layra_migrate import commands
        from layra_migrate.cli.hooks import CliHooks, asker
        from layra_migrate.views.rewrite import render_cache, render_rollback

        settings = _settings(
            output,
            mongo_uri=mongo_uri,
            db=db,
            env_file=env_file,
            timeout_s=timeout,
            redis_url=redis_url,
            migrations_dir=migrations_dir,
        )
        result = await commands.rollback(
            settings,
            to=to,
            dry_run=dry_run,
            force=force,
            batch_size=batch_size,
            confirm=asker(output, yes=yes),
            hooks=CliHooks(output),
        )
        _render_cache_failure(result.run.cache, output)
        if result.redis_problem is not None:
            output.warn(f"the real rollback would stop: {result.redis_problem.message}")
        if output.json_mode:
            output.emit_json(result.as_json())
            return result.exit_code
        render_rollback(result.run, output)
        render_cache(result.run.cache, result.cache_keys, output, dry_run)
        if result.run.conflict_count:
            output.next_step(
                "inspect the conflicting documents; `rollback --force` restores "
                "them too (their later edits to migrated fields are lost)"
            )
        elif result.run.migrations and not dry_run:
            output.next_step("`layra-migrate status` shows the ledger")
        return result.exit_code

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
        from layra_migrate import commands
        from layra_migrate.views.rewrite import render_status

        settings = _settings(
            output,
            mongo_uri=mongo_uri,
            db=db,
            env_file=env_file,
            timeout_s=timeout,
            migrations_dir=migrations_dir,
        )
        result = await commands.status(settings)
        if output.json_mode:
            output.emit_json(result.as_json())
            return result.exit_code
        render_status(result.report, output)
        if result.pending:
            output.next_step("`layra-migrate rewrite --plan plan.yaml --dry-run` to preview")
        return result.exit_code

    run("status", output, body)


@app.command()
def check(
    plan: PlanOpt = None,
    scratch_db: Annotated[
        str | None,
        typer.Option(
            "--scratch-db",
            metavar="NAME",
            help="Scratch database name (must be empty; dropped afterwards) "
            "[default: <db>_lmcheck_<random>]",
            show_default=False,
        ),
    ] = None,
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
        from layra_migrate import commands
        from layra_migrate.cli.hooks import CliHooks
        from layra_migrate.views.rewrite import render_check

        settings = _settings(
            output,
            mongo_uri=mongo_uri,
            db=db,
            env_file=env_file,
            timeout_s=timeout,
            migrations_dir=migrations_dir,
        )
        result = await commands.check(
            settings,
            plan=plan,
            scratch_db=scratch_db,
            batch_size=batch_size,
            hooks=CliHooks(output),
        )
        if output.json_mode:
            output.emit_json(result.as_json())
            return result.exit_code
        render_check(result.run, output)
        if result.ok:
            output.next_step("`layra-migrate rewrite --plan ... --dry-run`")
        return result.exit_code

    run("check", output, body)


@app.command()
def new(
    name: Annotated[
        str,
        typer.Argument(metavar="NAME", help="What the migration does, e.g. point_gemini_at_vertex"),
    ],
    migrations_dir: Annotated[
        Path | None,
        typer.Option(
            "--migrations-dir",
            metavar="DIR",
            help="Your project's migrations folder [env: "
            "LAYRA_MIGRATE_MIGRATIONS_DIR; default: ./migrations]",
            show_default=False,
        ),
    ] = None,
    env_file: EnvFileOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Scaffold the next migration file (NNNN_name.py) with the context API in its docstring.

    Writes to ./migrations of the current directory (your project) unless
    --migrations-dir says otherwise; never into the installed package. The number
    follows the highest of the bundled migrations and the folder's own. A new folder
    first receives a copy of the bundled migrations: pass it as --migrations-dir to
    rewrite, rollback, status and check.

    Example:

    \b
        cd /srv/layra-ops && layra-migrate new point_gemini_at_vertex

    Exit codes: 0 written, 2 bad name, the package folder, or the folder cannot be written.
    """
    output = make_output(json_out, debug=debug)

    async def body() -> int:
        from layra_migrate import commands

        settings = _settings(output, env_file=env_file, migrations_dir=migrations_dir)
        result = commands.new(settings, name)
        if output.json_mode:
            output.emit_json(result.as_json())
        else:
            for copied in result.copied:
                output.out.print(
                    f"copied the bundled {copied.name} into {result.folder} (the "
                    "folder is the whole migration set)"
                )
            output.out.print(f"created {result.path}")
            output.next_step(
                f"write up(ctx) in {result.path.name}, then `layra-migrate check "
                f"--migrations-dir {result.folder}`"
            )
        return result.exit_code

    run("new", output, body)


@app.command()
def unlock(
    if_stale: Annotated[
        bool,
        typer.Option("--if-stale", help="Release the lock only if its lease expired (required)."),
    ] = False,
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
        from layra_migrate import commands
        from layra_migrate.errors import UsageError

        if not if_stale:
            raise UsageError("unlock only releases an expired lock: pass --if-stale")
        settings = _settings(
            output, mongo_uri=mongo_uri, db=db, env_file=env_file, timeout_s=timeout
        )
        result = await commands.unlock(settings, if_stale=if_stale)
        released = result.run.released
        if output.json_mode:
            output.emit_json(result.as_json())
        elif released:
            output.out.print(f"released an expired lock: {released.describe()}")
            output.next_step("re-run the interrupted command; it resumes from the journal")
        else:
            output.out.print("no lock held")
        return result.exit_code

    run("unlock", output, body)
