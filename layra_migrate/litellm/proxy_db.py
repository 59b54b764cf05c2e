"""Models defined in the proxy's own database (``store_model_in_db``).

LiteLLM keeps models added through its UI in ``"LiteLLM_ProxyModelTable"``
(``model_name``, ``litellm_params`` encrypted with the salt key, ...). Those routes
are not in config.yaml, so the audit would call such a name "no route", or worse,
resolve it through a config wildcard the proxy never used for it (the router prefers
the exact database deployment). This module reads the model *names* through the
database container itself, read-only (``default_transaction_read_only``, a statement
timeout), with the container's own ``psql`` and credentials: no port is opened and
no driver is needed. ``litellm_params`` values never leave the container: only the
names of their keys are read.

The container is the one named with ``--litellm-db-container`` or discovered: the
host of a LiteLLM proxy container's ``DATABASE_URL`` (container name, compose service
or network alias), else the database of the proxy's compose project.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from layra_migrate import redact
from layra_migrate.decommission.roles import DATABASE, PROXY, PgLogin, detect_from_inspect, pg_login
from layra_migrate.litellm.resolve import Resolution

if TYPE_CHECKING:
    import docker

    from layra_migrate.audit import AuditReport
    from layra_migrate.litellm.config import LiteLLMConfig

TABLE = "LiteLLM_ProxyModelTable"
DEFINED_IN_DB = "defined_in_proxy_db"
TIMEOUT_S = 10

_EXISTS_SQL = f"SELECT to_regclass('public.\"{TABLE}\"') IS NOT NULL;"
# Names, ids, flags and the *keys* of litellm_params; never its values.
_MODELS_SQL = (
    "SELECT coalesce(json_agg(json_build_object("
    "'model_name', model_name, 'model_id', model_id, 'blocked', blocked, "
    "'created_by', created_by, "
    "'created_at', to_char(created_at, 'YYYY-MM-DD\"T\"HH24:MI:SS'), "
    "'param_keys', CASE WHEN jsonb_typeof(litellm_params::jsonb) = 'object' THEN "
    "(SELECT coalesce(json_agg(k ORDER BY k), '[]'::json) "
    "FROM jsonb_object_keys(litellm_params::jsonb) AS k) ELSE '[]'::json END"
    ") ORDER BY model_name, model_id), '[]'::json) "
    f'FROM public."{TABLE}";'
)


@dataclass
class DbModel:
    model_name: str
    model_id: str
    blocked: bool
    param_keys: list[str]
    created_by: str | None = None
    created_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_id": self.model_id,
            "blocked": self.blocked,
            "param_keys": list(self.param_keys),
            "created_by": self.created_by,
            "created_at": self.created_at,
        }


@dataclass
class ProxyDbModels:
    """What the proxy's database says, or why it could not be read."""

    status: str  # read | no_table | unreadable | not_found | not_checked
    detail: str
    container: str | None = None
    found_by: str | None = None
    models: list[DbModel] = field(default_factory=list)

    @property
    def read(self) -> bool:
        return self.status == "read"

    def names(self) -> list[str]:
        return sorted({m.model_name for m in self.models})

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "detail": self.detail,
            "container": self.container,
            "found_by": self.found_by,
            "table": TABLE,
            "model_names": self.names(),
            "models": [m.as_dict() for m in self.models],
        }


@dataclass(frozen=True)
class DbTarget:
    container_id: str
    name: str
    login: PgLogin
    found_by: str


def _env(attrs: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (attrs.get("Config") or {}).get("Env") or []:
        k, _, v = str(item).partition("=")
        out[k] = v
    return out


def _url_login(url: str, fallback: PgLogin) -> tuple[str | None, PgLogin]:
    """(host, login) from a postgres URL; the password is registered as a secret."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None, fallback
    if parts.scheme not in ("postgres", "postgresql"):
        return None, fallback
    password = unquote(parts.password) if parts.password else None
    if password:
        redact.register_secret(password)
    user = unquote(parts.username) if parts.username else fallback.user
    dbname = parts.path.lstrip("/") or fallback.dbname
    # The URL's password is the one the proxy logs in with; the container's is a fallback.
    return parts.hostname, PgLogin(user, dbname, password or fallback.password)


def target_for(client: docker.DockerClient, name: str) -> DbTarget:
    """The named container (``--litellm-db-container``); docker errors propagate, a
    container that is not running is exit 3 (nothing can be read from it)."""
    from layra_migrate.errors import UnreachableError

    attrs = client.api.inspect_container(name)
    status = (attrs.get("State") or {}).get("Status")
    if status != "running":
        raise UnreachableError(
            f"--litellm-db-container {name} is {status}, not running",
            hint=f"docker start {name}, or leave the option out",
        )
    return DbTarget(
        str(attrs["Id"]),
        str(attrs.get("Name", name)).lstrip("/"),
        pg_login(_env(attrs)),
        "--litellm-db-container",
    )


def discover(client: docker.DockerClient) -> tuple[list[DbTarget], list[str]]:
    """The databases of the LiteLLM proxies running on this engine, and notes."""
    api = client.api
    notes: list[str] = []
    rows = api.containers(filters={"status": "running"})
    inspected = [api.inspect_container(r["Id"]) for r in rows]
    proxies = [
        a
        for a in inspected
        if detect_from_inspect(
            a, ((a.get("Config") or {}).get("Labels") or {}).get("com.docker.compose.service")
        ).role
        == PROXY
    ]
    targets: list[DbTarget] = []
    for proxy in proxies:
        pname = str(proxy.get("Name", "")).lstrip("/")
        plabels = (proxy.get("Config") or {}).get("Labels") or {}
        project = plabels.get("com.docker.compose.project")
        url = _env(proxy).get("DATABASE_URL", "")
        host = None
        if url:
            host, _ = _url_login(url, PgLogin("postgres", "postgres", None))
        pnets = set(((proxy.get("NetworkSettings") or {}).get("Networks") or {}).keys())
        chosen: dict[str, Any] | None = None
        how = ""
        for a in inspected:
            if a is proxy:
                continue
            name = str(a.get("Name", "")).lstrip("/")
            labels = (a.get("Config") or {}).get("Labels") or {}
            nets = (a.get("NetworkSettings") or {}).get("Networks") or {}
            aliases = {
                al
                for n, ep in nets.items()
                if n in pnets
                for al in ((ep or {}).get("Aliases") or [])
            }
            if host and (
                host == name
                or host in aliases
                or (
                    project
                    and labels.get("com.docker.compose.project") == project
                    and labels.get("com.docker.compose.service") == host
                )
            ):
                chosen, how = a, f"host {host!r} of {pname}'s DATABASE_URL"
                break
        if chosen is None and project:
            same = [
                a
                for a in inspected
                if a is not proxy
                and ((a.get("Config") or {}).get("Labels") or {}).get("com.docker.compose.project")
                == project
                and detect_from_inspect(
                    a,
                    ((a.get("Config") or {}).get("Labels") or {}).get("com.docker.compose.service"),
                ).role
                == DATABASE
            ]
            if len(same) == 1:
                chosen, how = same[0], f"the database of {pname}'s compose project {project}"
        if chosen is None:
            where = f"host {host!r} of its DATABASE_URL" if host else "no DATABASE_URL"
            notes.append(f"proxy {pname}: its database is not a container here ({where})")
            continue
        login = pg_login(_env(chosen))
        if url:
            _host, login = _url_login(url, login)
        cid = str(chosen["Id"])
        if all(t.container_id != cid for t in targets):
            targets.append(DbTarget(cid, str(chosen.get("Name", "")).lstrip("/"), login, how))
    if not proxies:
        notes.append("no running LiteLLM proxy container found on the Docker engine")
    return targets, notes


def read_models(client: docker.DockerClient, target: DbTarget) -> ProxyDbModels:
    """The models stored in the proxy database, read-only, through the container."""
    from layra_migrate.decommission.dump import run_exec
    from layra_migrate.decommission.pg_errors import explain

    env = target.login.exec_env(read_only=True, timeout_s=TIMEOUT_S)
    base = [
        "psql",
        "-X",
        "-q",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "--no-password",
        "-U",
        target.login.user,
        "-d",
        target.login.dbname,
        "-c",
    ]

    def fail(stderr: str, code: int | None) -> ProxyDbModels:
        if code in (126, 127):
            why = "psql is not available in the container"
        else:
            f = explain(
                stderr, user=target.login.user, dbname=target.login.dbname, container=target.name
            )
            why = f.cause if f else f"psql exited {code}: {stderr[-200:]}"
        return ProxyDbModels("unreadable", redact.scrub(why), target.name, target.found_by)

    out, res = run_exec(client, target.container_id, [*base, _EXISTS_SQL], env)
    if res.exit_code != 0:
        return fail(res.stderr, res.exit_code)
    if out.strip() != b"t":
        return ProxyDbModels(
            "no_table",
            f"database {target.login.dbname} has no {TABLE} (store_model_in_db was never used)",
            target.name,
            target.found_by,
        )
    out, res = run_exec(client, target.container_id, [*base, _MODELS_SQL], env)
    if res.exit_code != 0:
        return fail(res.stderr, res.exit_code)
    try:
        rows = json.loads(out.decode("utf-8", "replace") or "[]")
    except ValueError:
        return ProxyDbModels(
            "unreadable", "psql returned something that is not JSON", target.name, target.found_by
        )
    models = [
        DbModel(
            str(r.get("model_name") or ""),
            str(r.get("model_id") or ""),
            bool(r.get("blocked")),
            [str(k) for k in r.get("param_keys") or []],
            r.get("created_by"),
            r.get("created_at"),
        )
        for r in rows
    ]
    return ProxyDbModels(
        "read",
        f"{len(models)} model(s) in {TABLE} of {target.login.dbname}",
        target.name,
        target.found_by,
        models,
    )


def merge(results: list[ProxyDbModels]) -> ProxyDbModels:
    if len(results) == 1:
        return results[0]
    read = [r for r in results if r.read]
    models = [m for r in read for m in r.models]
    status = "read" if read else results[0].status
    detail = "; ".join(f"{r.container}: {r.detail}" for r in results)
    return ProxyDbModels(
        status,
        detail,
        ", ".join(str(r.container) for r in results),
        "; ".join(str(r.found_by) for r in results),
        models,
    )


def reason_for(name: str, prior: Resolution | None, found: ProxyDbModels) -> str:
    text = (
        f"defined in the proxy database ({TABLE} in {found.container}, added through "
        "LiteLLM's UI): its provider, model and key are stored there encrypted, not in "
        "config.yaml; look it up in LiteLLM's UI (Models) or add it to config.yaml, then "
        "write its target in the plan (provider, base_url, model, api_key_env)"
    )
    if prior is not None and prior.resolved:
        text += (
            f"; config.yaml's route ({prior.route or 'wildcard'}) is not the one the "
            "proxy used for it"
        )
    return text


def annotate(report: AuditReport, found: ProxyDbModels) -> list[str]:
    """Mark the proxied names the proxy database defines; return them. A name found
    there is never resolved from config.yaml: the proxy's own route for it is in the
    database (encrypted), so only the operator can give its direct target."""
    names = set(found.names())
    marked = []
    for m in report.models:
        if m.model_name not in names:
            continue
        prior = m.resolution
        m.resolution = Resolution(
            m.model_name, None, DEFINED_IN_DB, reason_for(m.model_name, prior, found)
        )
        m.api_key_present = None
        marked.append(m.model_name)
    return marked


def not_read_note(found: ProxyDbModels, store_model_in_db: bool) -> str | None:
    if found.read or found.status == "no_table":
        return None
    if store_model_in_db or found.status == "unreadable":
        return (
            f"the proxy database was not read ({found.detail}): models added through "
            "LiteLLM's UI are unknown; pass --litellm-db-container NAME"
        )
    return None


def docker_reachable_hint() -> bool:
    """Whether discovery should try Docker at all: ``DOCKER_HOST`` is set or the
    default socket exists (an audit on a host without Docker never waits for it)."""
    import os

    return bool(os.environ.get("DOCKER_HOST")) or os.path.exists("/var/run/docker.sock")


def proxy_db_models(container: str | None, *, connect_timeout_s: float = 3.0) -> ProxyDbModels:
    """Read the proxy database's models: the named container (errors are the
    command's: Docker unreachable exit 3, no such container exit 2, unreadable exit 3),
    or discovered (never an error: the reason is in the result)."""
    from layra_migrate.decommission.client import connect, docker_errors
    from layra_migrate.errors import UnreachableError, UsageError

    if container:
        import docker

        client = connect()
        try:
            try:
                target = target_for(client, container)
            except docker.errors.NotFound:
                raise UsageError(
                    f"--litellm-db-container {container}: no such container",
                    hint="docker ps shows the database container's name",
                ) from None
            with docker_errors(f"reading {container}"):
                found = read_models(client, target)
        finally:
            client.close()
        if found.status == "unreadable":
            raise UnreachableError(
                f"the proxy database in {container} could not be read: {found.detail}"
            )
        return found
    if not docker_reachable_hint():
        return ProxyDbModels("not_checked", "no Docker engine configured (DOCKER_HOST)")
    try:
        client = connect(connect_timeout_s)
    except UnreachableError as exc:
        return ProxyDbModels("not_checked", exc.message)
    try:
        with docker_errors("looking for the proxy database"):
            targets, notes = discover(client)
            if not targets:
                return ProxyDbModels("not_found", "; ".join(notes) or "no proxy database found")
            return merge([read_models(client, t) for t in targets])
    except Exception as exc:  # noqa: BLE001 - discovery informs, it never fails the audit
        return ProxyDbModels("not_checked", redact.scrub(str(exc)))
    finally:
        client.close()


def mark_proxy_db_models(
    report: AuditReport, config: LiteLLMConfig | None, container: str | None
) -> ProxyDbModels:
    """Read the proxy database's models (named container or discovered), mark the
    proxied names they define in ``report`` and add a note when it could not be read."""
    found = proxy_db_models(container)
    annotate(report, found)
    note = not_read_note(found, bool(config and config.store_model_in_db))
    if note:
        report.config_notes.append(note)
    return found
