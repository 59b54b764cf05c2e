"""The reversible migration engine.

One job per module: :mod:`discovery` finds and validates migration files,
:mod:`ledger` records runs, :mod:`lock` is the lease lock, :mod:`journal`
holds before-images, :mod:`api` is what a migration file receives (typed
Protocols), :mod:`context` implements it (batched, journaled writes),
:mod:`runner` applies and rolls back, :mod:`check` proves reversibility on a
scratch copy, :mod:`cache` clears Layra's Redis copies, :mod:`preflight`
turns the audit and the plan into go / no-go, :mod:`scaffold` writes a new
migration file.

Nothing here imports Typer or Rich, prints or exits: results are dataclasses,
failures are :mod:`layra_migrate.errors` exceptions.
"""

from __future__ import annotations
