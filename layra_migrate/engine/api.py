"""What a migration file receives: the typed API its ``up(ctx)`` and ``down(ctx)`` use.

A migration is typed against these Protocols, not against the engine's context class::

    from layra_migrate.engine.api import MigrationAPI

    async def up(ctx: MigrationAPI) -> None: ...

``up`` gets a :class:`MigrationAPI`: the reviewed plan and the key values are always
there (the engine refuses to run without them). ``down`` gets a :class:`DownAPI`,
which has no plan and no keys: a rollback reads no plan, and the journal replay that
follows ``down`` restores every before-image anyway, so ``down`` is only for changes
the journal cannot see. Everything else on the engine's context is internal.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from layra_migrate.plan import KeyValues, Plan
    from layra_migrate.progress import Progress


class DownAPI(Protocol):
    """The context of every migration function: read, write (journaled), log."""

    @property
    def MISSING(self) -> Any:  # noqa: N802 - a constant, spelled as one
        """The value of an absent field: in ``expect``, or as a new value to remove it."""

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        """The application database (PyMongo async): read freely; write only through
        :meth:`set_fields`."""

    @property
    def logger(self) -> logging.Logger:
        """This migration's logger (secrets are masked on output)."""

    @property
    def dry_run(self) -> bool:
        """True under ``--dry-run``: :meth:`set_fields` records the diff, writes nothing."""

    @property
    def progress(self) -> Progress:
        """Where a long step of the migration reports (``start(task, total)``,
        ``advance(task, n)``, ``finish(task)``): shown with an ETA on a terminal, as a
        periodic line otherwise. :meth:`stream` reports on its own."""

    @property
    def skipped(self) -> int:
        """Documents left alone so far because they changed while migrating (their
        ``expect`` no longer held); a re-run migrates them."""

    def stream(
        self,
        collection: str,
        filter: Mapping[str, Any] | None = None,
        projection: Mapping[str, Any] | None = None,
        *,
        task: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Documents in ``_id`` order, fetched in batches (bounded memory), with progress
        under ``task`` (default: the collection name)."""
        ...

    async def set_fields(
        self,
        collection: str,
        doc_id: Any,
        changes: Mapping[str, Any],
        expect: Mapping[str, Any] | None = None,
        *,
        cache_keys: list[str] | tuple[str, ...] = (),
        label: Mapping[str, str] | None = None,
        field_labels: Mapping[str, Mapping[str, str]] | None = None,
    ) -> bool:
        """Change some fields of one document, journaled and reversible.

        ``changes`` maps dotted paths to new values (``MISSING`` removes a field);
        ``expect`` maps the same paths to the values they hold now (from the document
        you streamed; without it they are read). The write happens only while the
        document still holds ``expect``. ``cache_keys``: Layra's Redis keys holding a
        copy of the document (deleted after the run). ``label`` / ``field_labels``
        annotate the dry-run diff. Returns whether anything will be written.
        """
        ...

    async def flush(self) -> None:
        """Write the buffered batch now (the engine also flushes after the function
        returns). Raises ``Interrupted`` after the batch when a stop was requested."""
        ...


class MigrationAPI(DownAPI, Protocol):
    """The context of ``up(ctx)``: the reviewed plan and the key values it needs."""

    @property
    def plan(self) -> Plan:
        """The reviewed plan: ``plan.proxy.matches(url)``, ``plan.target(model_name)``."""

    @property
    def keys(self) -> KeyValues:
        """Key values by variable name: ``keys.for_target(plan.target(name))``."""


UpFunction = Callable[[MigrationAPI], Awaitable[None]]
DownFunction = Callable[[DownAPI], Awaitable[None]]

__all__ = ["DownAPI", "DownFunction", "MigrationAPI", "UpFunction"]
