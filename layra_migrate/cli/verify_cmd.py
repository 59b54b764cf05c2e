"""`layra-migrate verify`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from layra_migrate.cli.app import app
from layra_migrate.cli.common import (
    DbOpt,
    DebugOpt,
    EnvFileOpt,
    JsonOpt,
    MongoUriOpt,
    PlanOpt,
    VerboseOpt,
    make_output,
    run,
    show_settings,
)

if TYPE_CHECKING:
    from layra_migrate.commands import ProxyComparisonResult
    from layra_migrate.render import Output


@app.command()
def verify(
    plan: PlanOpt = None,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", metavar="N", help="Probes in flight at once.", min=1, max=64),
    ] = 8,
    probe_timeout: Annotated[
        float | None,
        typer.Option(
            "--probe-timeout",
            metavar="SECONDS",
            help="Seconds per probe, covering connect, first "
            "token and the end of the stream [default: 30]",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="Deprecated alias of --probe-timeout (in the other "
            "commands --timeout is the MongoDB timeout).",
            show_default=False,
        ),
    ] = None,
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            metavar="PROVIDER",
            help="Probe only the targets of this provider (e.g. deepseek).",
            show_default=False,
        ),
    ] = None,
    allow_skipped: Annotated[
        bool,
        typer.Option(
            "--allow-skipped",
            help="Exit 0 even when some targets were skipped (not OpenAI-"
            "compatible chat targets, unresolved plan entries).",
        ),
    ] = False,
    proxy_url: Annotated[
        list[str] | None,
        typer.Option(
            "--proxy-url",
            metavar="URL",
            help="Another URL that means the proxy (repeatable); references to it "
            "are counted as not migrated. Ignored with --plan (the plan lists its proxy URLs).",
            show_default=False,
        ),
    ] = None,
    against_proxy: Annotated[
        bool,
        typer.Option(
            "--against-proxy",
            help="With --plan: send each proxied name's request through the "
            "running proxy and directly, and compare which upstream answers (exit 0 only when "
            "every name is the same).",
        ),
    ] = False,
    proxy_endpoint: Annotated[
        str | None,
        typer.Option(
            "--proxy-endpoint",
            metavar="URL",
            help="With --against-proxy: the proxy's URL as reachable from here "
            "(e.g. http://localhost:4000/v1), instead of the one stored in Layra's documents.",
            show_default=False,
        ),
    ] = None,
    mongo_uri: MongoUriOpt = None,
    db: DbOpt = None,
    env_file: EnvFileOpt = None,
    mongo_timeout: Annotated[
        float | None,
        typer.Option(
            "--mongo-timeout",
            metavar="SECONDS",
            help="Seconds to wait for MongoDB before giving up [default: 5]",
            show_default=False,
            rich_help_panel="Connection",
        ),
    ] = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Send one real test chat to every provider target; read-only for Layra's data.

    With --plan, probes the targets the plan would write (keys from the
    environment or --env-file), before anything is rewritten. Without it,
    probes the distinct (base URL, model, key) targets the database holds now in
    all four places; references still pointing at the proxy are counted as not
    migrated. Each probe is the request Layra sends: stream=True,
    stream_options.include_usage, and temperature / max_tokens / top_p exactly
    as a referencing configuration makes the app send them (UI "default" flags
    and -1 send nothing; Layra's clamps apply). A target whose references send
    different parameter shapes is probed once per shape (at most 3, most common
    first); soft-deleted documents never shape a probe. Every run is recorded
    in the layra_migrate_verify collection (never keys).

    With --against-proxy (and --plan), before the cut-over: every proxied name
    gets the same request twice, through the running LiteLLM proxy (the alias,
    the key Layra stores) and directly (the plan's target); the proxy's response
    headers (x-litellm-model-name, -model-api-base, -attempted-fallbacks) say
    which upstream it used. Each name is same, proxy_fell_back, differs,
    direct_fails, proxy_fails, undetermined or skipped.

    Example:

        layra-migrate verify --plan plan.yaml --env-file /srv/layra/.env --probe-timeout 20
        layra-migrate verify --plan plan.yaml --against-proxy --proxy-endpoint http://localhost:4000/v1

    Exit codes: 0 every target ok (or skipped, with --allow-skipped), 2 bad
    input, 3 MongoDB unreachable, 4 stale plan (or written for another
    database), 5 a target failed or was skipped (with --against-proxy: a name
    that is not the same, or skipped).
    """
    output = make_output(json_out, verbose, debug)

    async def body() -> int:
        from layra_migrate import commands
        from layra_migrate.cli.hooks import CliHooks
        from layra_migrate.errors import UsageError
        from layra_migrate.settings import load_settings

        if timeout is not None:
            if probe_timeout is not None:
                raise UsageError("--timeout is the old name of --probe-timeout: pass one")
            output.warn(
                "verify --timeout is deprecated: use --probe-timeout (the same "
                "meaning); --mongo-timeout sets the MongoDB timeout"
            )
        deadline = (
            probe_timeout
            if probe_timeout is not None
            else (timeout if timeout is not None else 30.0)
        )
        if not deadline > 0:
            raise UsageError("--probe-timeout must be a positive number of seconds")
        if against_proxy and plan is None:
            raise UsageError(
                "--against-proxy compares the plan's targets with the proxy",
                hint="add --plan plan.yaml (written by audit --plan-out)",
            )
        if proxy_endpoint is not None and not against_proxy:
            raise UsageError("--proxy-endpoint only applies with --against-proxy")
        settings = load_settings(
            mongo_uri=mongo_uri, db=db, env_file=env_file, timeout_s=mongo_timeout
        )
        show_settings(output, settings)
        if against_proxy and plan is not None:
            comparison = await commands.verify_against_proxy(
                settings,
                plan=plan,
                proxy_endpoint=proxy_endpoint,
                concurrency=concurrency,
                timeout_s=deadline,
                only=only,
                allow_skipped=allow_skipped,
                hooks=CliHooks(output),
            )
            return _render_comparison(comparison, output, allow_skipped)
        result = await commands.verify(
            settings,
            plan=plan,
            concurrency=concurrency,
            timeout_s=deadline,
            only=only,
            allow_skipped=allow_skipped,
            proxy_urls=proxy_url or [],
            hooks=CliHooks(output),
        )
        if output.json_mode:
            if result.report.record_error:
                output.warn(result.report.record_error)
            output.emit_json(result.as_json())
        else:
            from layra_migrate.views.verify import render_verify

            render_verify(result.report, output, allow_skipped=allow_skipped)
        return result.exit_code

    run("verify", output, body)


def _render_comparison(result: ProxyComparisonResult, output: Output, allow_skipped: bool) -> int:
    if output.json_mode:
        if result.report.record_error:
            output.warn(result.report.record_error)
        output.emit_json(result.as_json())
    else:
        from layra_migrate.views.verify_proxy import render_comparison

        render_comparison(result.report, output, allow_skipped=allow_skipped)
    return result.exit_code
