"""The one exception tree. Each class carries the exit code the CLI maps it to.

Core modules raise these; only the CLI layer turns them into exit codes. Every
message is a single line that names the problem and, where possible, the fix.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_REFUSED = 4
EXIT_VERIFY_FAILED = 5
EXIT_CONFLICTS = 6
EXIT_INTERRUPTED = 130


class LayraMigrateError(Exception):
    """Base class: an expected failure with a one-line message and an exit code."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(LayraMigrateError):
    """Bad flag, bad option combination, non-interactive without --yes."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """An unreadable or invalid file (config.yaml, plan, env file, migration file)."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if path:
            where = f"{path}:{line}: " if line else f"{path}: "
        super().__init__(where + message, hint=hint)
        self.path = path
        self.line = line


class UnreachableError(LayraMigrateError):
    """A dependency (MongoDB, Redis, Docker) did not answer within its timeout."""

    exit_code = EXIT_UNREACHABLE


class RefusedError(LayraMigrateError):
    """A safety precondition refused the operation; nothing was written."""

    exit_code = EXIT_REFUSED


class VerificationFailed(LayraMigrateError):
    """A verify target, an archive check or a reversibility check failed."""

    exit_code = EXIT_VERIFY_FAILED


class Interrupted(LayraMigrateError):
    """Ctrl-C or SIGTERM, after the interrupted step was made safe."""

    exit_code = EXIT_INTERRUPTED
