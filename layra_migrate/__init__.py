"""layra-migrate: retire a Layra deployment's LiteLLM proxy, reversibly.

The command-line tool is a thin layer over :mod:`layra_migrate.commands`: every
command is one library call there (``commands.audit(settings)``, ...), returning a
result object with ``as_json()`` and an ``exit_code``; docs/API.md shows the whole
job from Python.

The command functions are reached through ``commands`` (as Alembic's are through
``alembic.command``), not bound here: ``audit``, ``verify`` and ``decommission`` are
also this package's submodules, and importing a submodule rebinds its name on the
package, which would silently replace a function of the same name.
"""

from __future__ import annotations

__version__ = "0.1.0"

from layra_migrate import commands  # noqa: E402  (after __version__: the CLI reads it)
from layra_migrate.commands import (  # noqa: E402
    AuditResult,
    CheckResult,
    Confirm,
    DecommissionResult,
    Hooks,
    NewResult,
    ProxyComparisonResult,
    RewriteResult,
    RollbackResult,
    StatusResult,
    UnlockResult,
    VerifyResult,
    assume_yes,
    no_confirmation,
)
from layra_migrate.errors import LayraMigrateError  # noqa: E402
from layra_migrate.settings import Settings, load_settings  # noqa: E402

__all__ = [
    "AuditResult",
    "CheckResult",
    "Confirm",
    "DecommissionResult",
    "Hooks",
    "LayraMigrateError",
    "NewResult",
    "ProxyComparisonResult",
    "RewriteResult",
    "RollbackResult",
    "Settings",
    "StatusResult",
    "UnlockResult",
    "VerifyResult",
    "__version__",
    "assume_yes",
    "commands",
    "load_settings",
    "no_confirmation",
]
