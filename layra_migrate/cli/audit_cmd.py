"""`layra-migrate audit`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from layra_migrate.cli.app import app
from layra_migrate.cli.common import (
    DbOpt,
    DebugOpt,
    EnvFileOpt,
    JsonOpt,
    MongoUriOpt,
    TimeoutOpt,
    VerboseOpt,
    make_output,
    run,
    show_settings,
)


@app.command()
def audit(
    litellm_config: Annotated[
        Path | None,
        typer.Option(
            "--litellm-config",
            metavar="PATH",
            help="LiteLLM's config.yaml [env: LAYRA_MIGRATE_LITELLM_CONFIG]",
            show_default=False,
        ),
    ] = None,
    litellm_env_file: Annotated[
        Path | None,
        typer.Option(
            "--litellm-env-file",
            metavar="PATH",
            help="The env file the LiteLLM proxy runs with (its compose .env or env_file): "
            "where it reads <PROVIDER>_API_BASE and key variables. Default: the .env beside "
            "the compose file holding --litellm-config. Values are never shown.",
            show_default=False,
        ),
    ] = None,
    proxy_url: Annotated[
        list[str] | None,
        typer.Option(
            "--proxy-url",
            metavar="URL",
            help="Another URL that means the proxy (repeatable); the defaults "
            "(litellm-proxy, localhost, 127.0.0.1, 172.17.0.1, host.docker.internal "
            "on :4000) stay.",
            show_default=False,
        ),
    ] = None,
    plan_out: Annotated[
        Path | None,
        typer.Option(
            "--plan-out",
            metavar="PATH",
            help="Write the reviewable plan (YAML) here.",
            show_default=False,
        ),
    ] = None,
    litellm_db_container: Annotated[
        str | None,
        typer.Option(
            "--litellm-db-container",
            metavar="NAME",
            help="The proxy's PostgreSQL container: list the models stored there "
            "(store_model_in_db), read-only. Default: found through the LiteLLM proxy "
            "container's DATABASE_URL when Docker answers (DOCKER_HOST).",
            show_default=False,
        ),
    ] = None,
    mongo_uri: MongoUriOpt = None,
    db: DbOpt = None,
    env_file: EnvFileOpt = None,
    timeout: TimeoutOpt = None,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Report where every model configuration points; read-only.

    Counts references in all four places (model_config, conversations,
    workflows, custom nodes), finds the ones that go through the LiteLLM proxy,
    resolves each proxied name to a direct provider through config.yaml, and
    lists anomalies. Writes nothing to the database.

    \b
    Example:
      layra-migrate audit --env-file /srv/layra/.env \\
          --litellm-config /srv/litellm/config.yaml --plan-out plan.yaml

    Models added through LiteLLM's UI live in the proxy's PostgreSQL
    (LiteLLM_ProxyModelTable), not in config.yaml: their names are read
    read-only through the database container (--litellm-db-container, or found
    through the proxy container's DATABASE_URL) and references to them are
    marked "defined in the proxy database". litellm_params values are never
    read out.

    Exit codes: 0 done, 2 bad input, 3 MongoDB unreachable (or the named
    --litellm-db-container cannot be read).
    """
    output = make_output(json_out, verbose, debug)

    async def body() -> int:
        from layra_migrate import commands
        from layra_migrate.cli.hooks import CliHooks
        from layra_migrate.settings import load_settings

        settings = load_settings(
            mongo_uri=mongo_uri,
            db=db,
            env_file=env_file,
            timeout_s=timeout,
            litellm_config=str(litellm_config) if litellm_config else None,
        )
        show_settings(output, settings)
        result = await commands.audit(
            settings,
            proxy_urls=proxy_url or [],
            plan_out=plan_out,
            hooks=CliHooks(output),
            litellm_db_container=litellm_db_container,
            litellm_env_file=litellm_env_file,
        )
        if output.json_mode:
            output.emit_json(result.as_json())
        else:
            from layra_migrate.views.audit import render_audit
            from layra_migrate.views.proxy_db import render_proxy_db

            if result.proxy_db is not None:
                render_proxy_db(result.proxy_db, output)
            render_audit(result.report, output, str(result.plan_path) if result.plan_path else None)
        return result.exit_code

    run("audit", output, body)
