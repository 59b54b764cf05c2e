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

from layra_migrate.commands._decommission import (
    decommission,
    restore,
)
from layra_migrate.commands._engine import (
    audit,
    check,
    history,
    new,
    rewrite,
    rollback,
    status,
    unlock,
)
from layra_migrate.commands._hooks import (
    Confirm,
    Hooks,
    assume_yes,
    no_confirmation,
)
from layra_migrate.commands._results import (
    DEFAULT_PLAN,
    AuditResult,
    CheckResult,
    DecommissionResult,
    HistoryResult,
    NewResult,
    ProxyComparisonResult,
    RewriteResult,
    RollbackResult,
    StatusResult,
    UnlockResult,
    VerifyResult,
    schema_id,
)
from layra_migrate.commands._verify import (
    verify,
    verify_against_proxy,
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
