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

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from layra_migrate import commands
    from layra_migrate.commands import (
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
    from layra_migrate.errors import LayraMigrateError
    from layra_migrate.settings import Settings, load_settings

# Where each exported name lives. Resolved on first use (PEP 562), so that
# `layra-migrate --help`, which imports this package, does not load the commands.
_HOMES = {
    "LayraMigrateError": "layra_migrate.errors",
    "Settings": "layra_migrate.settings",
    "load_settings": "layra_migrate.settings",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "commands":
        return importlib.import_module("layra_migrate.commands")
    home = _HOMES.get(name, "layra_migrate.commands" if name in __all__ else None)
    if home is None:
        raise AttributeError(f"module 'layra_migrate' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


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
