"""LiteLLM's own database tables, with rows, for a real PostgreSQL in the fake stack.

The four tables the decommission must protect, with the columns LiteLLM's Prisma
schema (``litellm/proxy/schema.prisma`` of litellm 1.110.2) gives them, spelled and
typed as Prisma's PostgreSQL migrations create them: ``String`` -> ``TEXT``,
``Float`` -> ``DOUBLE PRECISION``, ``Int`` -> ``INTEGER``, ``BigInt`` -> ``BIGINT``,
``Boolean`` -> ``BOOLEAN``, ``DateTime`` -> ``TIMESTAMP(3)``, ``Json`` -> ``JSONB``,
lists -> arrays, quoted identifiers. A test parses the installed wheel's
schema.prisma and compares it with :data:`TABLES`, so the copy cannot drift.

Rows (:func:`seed_sql`) are deterministic for a seed: users, virtual keys (stored
hashed, as LiteLLM stores them), models added through the UI
(``LiteLLM_ProxyModelTable``, ``litellm_params`` values encrypted as LiteLLM stores
them, here an opaque base64 blob that may hold a canary) and a few hundred spend logs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# (column, prisma type, optional, has a default): the scalar fields of each model,
# in schema order. Relation fields are not columns.
Column = tuple[str, str, bool, bool]

TABLES: dict[str, list[Column]] = {
    "LiteLLM_ProxyModelTable": [
        ("model_id", "String", False, True),
        ("model_name", "String", False, False),
        ("litellm_params", "Json", False, False),
        ("model_info", "Json", True, False),
        ("blocked", "Boolean", False, True),
        ("created_at", "DateTime", False, True),
        ("created_by", "String", False, False),
        ("updated_at", "DateTime", False, True),
        ("updated_by", "String", False, False),
    ],
    "LiteLLM_UserTable": [
        ("user_id", "String", False, False),
        ("user_alias", "String", True, False),
        ("team_id", "String", True, False),
        ("sso_user_id", "String", True, False),
        ("organization_id", "String", True, False),
        ("object_permission_id", "String", True, False),
        ("password", "String", True, False),
        ("password_reset_required", "Boolean", True, False),
        ("last_breach_check_at", "DateTime", True, False),
        ("teams", "String[]", False, True),
        ("user_role", "String", True, False),
        ("max_budget", "Float", True, False),
        ("spend", "Float", False, True),
        ("user_email", "String", True, False),
        ("models", "String[]", False, False),
        ("metadata", "Json", False, True),
        ("max_parallel_requests", "Int", True, False),
        ("tpm_limit", "BigInt", True, False),
        ("rpm_limit", "BigInt", True, False),
        ("budget_duration", "String", True, False),
        ("budget_reset_at", "DateTime", True, False),
        ("allowed_cache_controls", "String[]", False, True),
        ("policies", "String[]", False, True),
        ("model_spend", "Json", False, True),
        ("model_max_budget", "Json", False, True),
        ("created_at", "DateTime", True, True),
        ("updated_at", "DateTime", True, True),
    ],
    "LiteLLM_VerificationToken": [
        ("token", "String", False, False),
        ("key_name", "String", True, False),
        ("key_alias", "String", True, False),
        ("soft_budget_cooldown", "Boolean", False, True),
        ("spend", "Float", False, True),
        ("total_spend", "Float", False, True),
        ("expires", "DateTime", True, False),
        ("models", "String[]", False, False),
        ("aliases", "Json", False, True),
        ("config", "Json", False, True),
        ("router_settings", "Json", True, True),
        ("user_id", "String", True, False),
        ("team_id", "String", True, False),
        ("agent_id", "String", True, False),
        ("project_id", "String", True, False),
        ("permissions", "Json", False, True),
        ("max_parallel_requests", "Int", True, False),
        ("metadata", "Json", False, True),
        ("blocked", "Boolean", True, False),
        ("tpm_limit", "BigInt", True, False),
        ("rpm_limit", "BigInt", True, False),
        ("tpd_limit", "BigInt", True, False),
        ("max_budget", "Float", True, False),
        ("budget_duration", "String", True, False),
        ("budget_reset_at", "DateTime", True, False),
        ("allowed_cache_controls", "String[]", False, True),
        ("allowed_routes", "String[]", False, True),
        ("key_type", "String", True, False),
        ("policies", "String[]", False, True),
        ("access_group_ids", "String[]", False, True),
        ("model_spend", "Json", False, True),
        ("model_max_budget", "Json", False, True),
        ("budget_fallbacks", "Json", False, True),
        ("budget_id", "String", True, False),
        ("organization_id", "String", True, False),
        ("object_permission_id", "String", True, False),
        ("created_at", "DateTime", True, True),
        ("created_by", "String", True, False),
        ("updated_at", "DateTime", True, True),
        ("updated_by", "String", True, False),
        ("settings_updated_at", "DateTime", True, False),
        ("last_active", "DateTime", True, False),
        ("rotation_count", "Int", True, True),
        ("auto_rotate", "Boolean", True, True),
        ("rotation_interval", "String", True, False),
        ("last_rotation_at", "DateTime", True, False),
        ("key_rotation_at", "DateTime", True, False),
        ("budget_limits", "Json", True, False),
    ],
    "LiteLLM_SpendLogs": [
        ("request_id", "String", False, False),
        ("call_type", "String", False, False),
        ("api_key", "String", False, True),
        ("spend", "Float", False, True),
        ("total_tokens", "Int", False, True),
        ("prompt_tokens", "Int", False, True),
        ("completion_tokens", "Int", False, True),
        ("startTime", "DateTime", False, False),
        ("endTime", "DateTime", False, False),
        ("request_duration_ms", "Int", True, False),
        ("completionStartTime", "DateTime", True, False),
        ("model", "String", False, True),
        ("model_id", "String", True, True),
        ("model_group", "String", True, True),
        ("custom_llm_provider", "String", True, True),
        ("api_base", "String", True, True),
        ("user", "String", True, True),
        ("metadata", "Json", True, True),
        ("cache_hit", "String", True, True),
        ("cache_key", "String", True, True),
        ("request_tags", "Json", True, True),
        ("team_id", "String", True, False),
        ("organization_id", "String", True, False),
        ("end_user", "String", True, False),
        ("requester_ip_address", "String", True, False),
        ("messages", "Json", True, True),
        ("response", "Json", True, True),
        ("session_id", "String", True, False),
        ("status", "String", True, False),
        ("mcp_namespaced_tool_name", "String", True, False),
        ("billing_agent_id", "String", True, False),
        ("agent_id", "String", True, False),
        ("proxy_server_request", "Json", True, True),
        ("litellm_call_id", "String", True, False),
        ("created_at", "DateTime", False, True),
        ("updated_at", "DateTime", False, True),
    ],
}
PRIMARY_KEYS = {
    "LiteLLM_ProxyModelTable": "model_id",
    "LiteLLM_UserTable": "user_id",
    "LiteLLM_VerificationToken": "token",
    "LiteLLM_SpendLogs": "request_id",
}
INDEXES: dict[str, list[tuple[str, ...]]] = {
    "LiteLLM_UserTable": [("sso_user_id",)],  # @unique
    "LiteLLM_VerificationToken": [
        ("user_id", "team_id"),
        ("team_id",),
        ("budget_reset_at", "expires"),
    ],
    "LiteLLM_SpendLogs": [
        ("startTime",),
        ("startTime", "request_id"),
        ("end_user",),
        ("session_id",),
        ("litellm_call_id",),
        ("api_key", "startTime"),
    ],
}
UNIQUE: set[tuple[str, tuple[str, ...]]] = {("LiteLLM_UserTable", ("sso_user_id",))}

_PG_TYPES = {
    "String": "TEXT",
    "Float": "DOUBLE PRECISION",
    "Int": "INTEGER",
    "BigInt": "BIGINT",
    "Boolean": "BOOLEAN",
    "DateTime": "TIMESTAMP(3)",
    "Json": "JSONB",
}


def _default(table: str, col: str, ptype: str) -> str | None:
    if ptype == "String[]":
        return "ARRAY[]::TEXT[]"
    if col == "model_id" and table == "LiteLLM_ProxyModelTable":
        return None  # @default(uuid()): generated by the client, no database default
    return {
        "DateTime": "CURRENT_TIMESTAMP",
        "Boolean": "false",
        "Float": "0.0",
        "Int": "0",
        "String": "''",
    }.get(ptype) or ("'[]'" if col == "request_tags" else "'{}'" if ptype == "Json" else None)


def ddl() -> str:
    """CREATE TABLE / INDEX statements as Prisma's migrations write them."""
    out = []
    for table, cols in TABLES.items():
        lines = []
        for col, ptype, optional, has_default in cols:
            pg = "TEXT[]" if ptype == "String[]" else _PG_TYPES[ptype]
            line = f'    "{col}" {pg}'
            if not optional and not ptype.endswith("[]"):
                line += " NOT NULL"
            if has_default:
                d = _default(table, col, ptype)
                if d is not None:
                    line += f" DEFAULT {d}"
            lines.append(line)
        lines.append(f'    CONSTRAINT "{table}_pkey" PRIMARY KEY ("{PRIMARY_KEYS[table]}")')
        out.append(f'CREATE TABLE "{table}" (\n' + ",\n".join(lines) + "\n);")
        for fields in INDEXES.get(table, []):
            unique = (table, fields) in UNIQUE
            name = f"{table}_{'_'.join(fields)}_{'key' if unique else 'idx'}"
            cols_sql = ", ".join(f'"{f}"' for f in fields)
            out.append(
                f'CREATE {"UNIQUE " if unique else ""}INDEX "{name}" ON "{table}"({cols_sql});'
            )
    return "\n".join(out) + "\n"


def _lit(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return f"'{value.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}'"
    if isinstance(value, list):
        inner = ",".join(_lit(v) for v in value)
        return f"ARRAY[{inner}]::TEXT[]"
    if isinstance(value, dict):
        return _lit(json.dumps(value, sort_keys=True)) + "::jsonb"
    return "'" + str(value).replace("'", "''") + "'"


def _insert(table: str, row: dict[str, Any]) -> str:
    types = {c: t for c, t, _o, _d in TABLES[table]}
    cols = ", ".join(f'"{c}"' for c in row)
    vals = ", ".join(
        _lit(json.dumps(v, sort_keys=True)) + "::jsonb"
        if types[c] == "Json" and v is not None
        else _lit(v)
        for c, v in row.items()
    )
    return f'INSERT INTO "{table}" ({cols}) VALUES ({vals});'


@dataclass
class Seed:
    """What :func:`seed_sql` wrote: the rows per table and the UI-defined models."""

    sql: str
    counts: dict[str, int]
    db_models: list[str]
    virtual_keys: list[str]


# Models added through LiteLLM's UI (store_model_in_db): names Layra may send.
# One is named like an OpenAI model but served by Azure: a config.yaml wildcard
# ("openai/*") would send it to the wrong provider.
DB_MODELS = [
    ("kimi-k2-ui", "ollama_chat/kimi-k2:1t"),
    ("claude-sonnet-ui", "anthropic/claude-sonnet-4"),
    ("openai/gpt-4o-mini-ui", "azure/gpt-4o-mini"),
]


def _encrypted(value: str, salt: str) -> str:
    """An opaque stand-in for LiteLLM's encrypted litellm_params values (base64 of
    nonce + ciphertext): readable only with the salt key, never shown by the tool."""
    digest = hashlib.sha256((salt + value).encode()).digest()
    return base64.urlsafe_b64encode(digest[:24] + value.encode()[::-1]).decode()


def seed_sql(
    *,
    seed: int = 7,
    spend_logs: int = 300,
    users: int = 6,
    keys: int = 8,
    param_canary: str | None = None,
    salt: str = "sandbox-salt",
) -> Seed:
    """Deterministic INSERTs for the four tables. ``param_canary`` is stored inside one
    model's ``litellm_params`` (api_key), to prove it never reaches output."""
    rnd = random.Random(seed)
    start = datetime(2026, 3, 1, 8, 0, 0)
    stmts: list[str] = []
    user_ids = ["default_user_id"] + [f"user-{i:02d}" for i in range(1, users)]
    for i, uid in enumerate(user_ids):
        stmts.append(
            _insert(
                "LiteLLM_UserTable",
                {
                    "user_id": uid,
                    "user_alias": None if i == 0 else f"member {i}",
                    "user_role": "proxy_admin" if i == 0 else "internal_user",
                    "user_email": None if i == 0 else f"user{i}@example.invalid",
                    "spend": round(rnd.uniform(0, 40), 6),
                    "max_budget": None if i % 2 else 100.0,
                    "models": [] if i % 3 else ["deepseek-reasoner", "gemini-2.5-flash"],
                    "teams": [],
                    "metadata": {"source": "ui"} if i else {},
                    "created_at": start - timedelta(days=90 - i),
                    "updated_at": start - timedelta(days=10 - i),
                },
            )
        )
    virtual_keys = [f"sk-sandbox-vk-{i:04d}" for i in range(keys)]
    hashed = [hashlib.sha256(k.encode()).hexdigest() for k in virtual_keys]
    for i, (vk, token) in enumerate(zip(virtual_keys, hashed, strict=True)):
        stmts.append(
            _insert(
                "LiteLLM_VerificationToken",
                {
                    "token": token,
                    "key_name": f"sk-...{vk[-4:]}",
                    "key_alias": f"layra-{i}",
                    "spend": round(rnd.uniform(0, 25), 6),
                    "models": [] if i % 2 else ["deepseek-reasoner"],
                    "user_id": user_ids[i % len(user_ids)],
                    "metadata": {"team": "layra"},
                    "max_budget": None if i % 3 else 50.0,
                    "rpm_limit": None if i % 2 else 600,
                    "created_at": start - timedelta(days=60 - i),
                    "created_by": "default_user_id",
                    "updated_at": start - timedelta(days=5),
                    "updated_by": "default_user_id",
                },
            )
        )
    for i, (name, model) in enumerate(DB_MODELS):
        params: dict[str, Any] = {
            "model": _encrypted(model, salt),
            "api_key": _encrypted(
                param_canary if (param_canary and i == 0) else f"key-{name}", salt
            ),
        }
        if model.startswith(("ollama", "azure/")):
            params["api_base"] = _encrypted("http://10.0.0.5:11434", salt)
        if param_canary and i == 0:
            params["api_key_plain"] = param_canary  # a careless UI import; still never shown
        stmts.append(
            _insert(
                "LiteLLM_ProxyModelTable",
                {
                    "model_id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                    "model_name": name,
                    "litellm_params": params,
                    "model_info": {"db_model": True, "mode": "chat"},
                    "blocked": False,
                    "created_at": start - timedelta(days=30 - i),
                    "created_by": "default_user_id",
                    "updated_at": start - timedelta(days=30 - i),
                    "updated_by": "default_user_id",
                },
            )
        )
    groups = [
        ("deepseek-reasoner", "deepseek-reasoner", "deepseek", "https://api.deepseek.com"),
        (
            "gemini-2.5-flash",
            "gemini-2.5-flash",
            "gemini",
            "https://generativelanguage.googleapis.com",
        ),
        ("kimi-k2-ui", "kimi-k2:1t", "ollama_chat", "http://10.0.0.5:11434"),
    ]
    for i in range(spend_logs):
        group, model, provider, base = groups[rnd.randrange(len(groups))]
        t0 = start + timedelta(minutes=7 * i, seconds=rnd.randrange(60))
        prompt, completion = rnd.randrange(20, 4000), rnd.randrange(1, 1200)
        stmts.append(
            _insert(
                "LiteLLM_SpendLogs",
                {
                    "request_id": f"chatcmpl-{uuid.UUID(int=rnd.getrandbits(128), version=4)}",
                    "call_type": "acompletion",
                    "api_key": hashed[i % len(hashed)],
                    "spend": round((prompt * 0.27 + completion * 1.1) / 1e6, 9),
                    "total_tokens": prompt + completion,
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "startTime": t0,
                    "endTime": t0 + timedelta(milliseconds=rnd.randrange(300, 30000)),
                    "request_duration_ms": rnd.randrange(300, 30000),
                    "completionStartTime": t0 + timedelta(milliseconds=rnd.randrange(100, 3000)),
                    "model": model,
                    "model_id": "",
                    "model_group": group,
                    "custom_llm_provider": provider,
                    "api_base": base,
                    "user": user_ids[i % len(user_ids)],
                    "metadata": {"user_api_key_alias": f"layra-{i % keys}", "status": "success"},
                    "cache_hit": "False",
                    "request_tags": ["layra"],
                    "status": "success",
                    "session_id": f"s-{i // 10:04d}",
                    "litellm_call_id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                    "created_at": t0,
                    "updated_at": t0,
                },
            )
        )
    counts = {
        "LiteLLM_UserTable": len(user_ids),
        "LiteLLM_VerificationToken": keys,
        "LiteLLM_ProxyModelTable": len(DB_MODELS),
        "LiteLLM_SpendLogs": spend_logs,
    }
    sql = "BEGIN;\n" + "\n".join(stmts) + "\nCOMMIT;\n"
    return Seed(sql, counts, [n for n, _ in DB_MODELS], virtual_keys)


COUNTS_SQL = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM \"{t}\"" for t in TABLES) + ";"
SPEND_CHECKSUM_SQL = (
    "SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, E'\\n' "
    "ORDER BY t.request_id), '')) FROM \"LiteLLM_SpendLogs\" t;"
)


# -- running SQL inside the database container ---------------------------------------------


class SqlError(RuntimeError):
    """psql exited non-zero (the message holds its scrubbed stderr)."""


def psql(
    client: Any,
    container: str,
    sql: str,
    *,
    user: str = "llmproxy",
    dbname: str = "litellm",
    env: dict[str, str] | None = None,
) -> str:
    """Run SQL with the container's own psql over its default socket; return the
    unaligned, tuples-only output."""
    from layra_migrate.decommission.dump import run_exec

    out, outcome = run_exec(
        client,
        container,
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-U", user, "-d", dbname, "-c", sql],
        env,
    )
    if outcome.exit_code != 0:
        raise SqlError(f"psql exited {outcome.exit_code}: {outcome.stderr}")
    return out.decode("utf-8", "replace").strip()


def wait_ready(client: Any, container: str, timeout_s: float = 60.0) -> None:
    """Until the server that answers is the final one (PID 1 is postgres, so the
    entrypoint's temporary init server is gone) and ``pg_isready`` says so."""
    import time

    from layra_migrate.decommission.dump import run_exec

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        state = client.api.inspect_container(container).get("State") or {}
        if not state.get("Running"):
            last = f"container is {state.get('Status')}"
        else:
            comm, _ = run_exec(client, container, ["cat", "/proc/1/comm"])
            if comm.strip() == b"postgres":
                _out, ready = run_exec(client, container, ["pg_isready", "-q"])
                if ready.exit_code == 0:
                    return
                last = f"pg_isready exited {ready.exit_code}"
            else:
                last = "initialising"
        time.sleep(0.2)
    raise TimeoutError(f"PostgreSQL in {container} not ready within {timeout_s:g}s ({last})")


def load(
    client: Any, container: str, seed: Seed, *, user: str = "llmproxy", dbname: str = "litellm"
) -> None:
    """Create LiteLLM's tables and insert the seed's rows (one transaction)."""
    import io
    import tarfile

    from layra_migrate.decommission.dump import run_exec

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, text in (("litellm-ddl.sql", ddl()), ("litellm-seed.sql", seed.sql)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    if not client.api.put_archive(container, "/tmp", buf.getvalue()):
        raise SqlError("could not copy the SQL files into the container")
    for name in ("litellm-ddl.sql", "litellm-seed.sql"):
        _out, outcome = run_exec(
            client,
            container,
            [
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                user,
                "-d",
                dbname,
                "-f",
                f"/tmp/{name}",
            ],
        )
        if outcome.exit_code != 0:
            raise SqlError(f"{name}: psql exited {outcome.exit_code}: {outcome.stderr}")
    run_exec(client, container, ["rm", "-f", "/tmp/litellm-ddl.sql", "/tmp/litellm-seed.sql"])


@dataclass(frozen=True)
class Snapshot:
    """Row counts of the four tables and a checksum of every spend log row."""

    counts: dict[str, int]
    spend_checksum: str


def snapshot(
    client: Any,
    container: str,
    *,
    user: str = "llmproxy",
    dbname: str = "litellm",
    env: dict[str, str] | None = None,
) -> Snapshot:
    rows = psql(client, container, COUNTS_SQL, user=user, dbname=dbname, env=env)
    counts = {}
    for line in rows.splitlines():
        table, _, n = line.partition("|")
        counts[table] = int(n)
    checksum = psql(client, container, SPEND_CHECKSUM_SQL, user=user, dbname=dbname, env=env)
    return Snapshot(counts, checksum)
