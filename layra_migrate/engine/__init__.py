"""The reversible migration engine.

One job per module: :mod:`discovery` finds and validates migration files,
:mod:`ledger` records runs, :mod:`lock` is the lease lock, :mod:`journal`
holds before-images, :mod:`context` is the write API migrations use,
:mod:`runner` applies and rolls back, :mod:`check` proves reversibility on a
scratch copy, :mod:`cache` clears Layra's Redis copies, :mod:`preflight`
turns the audit and the plan into go / no-go.

Nothing here imports Typer or Rich, prints or exits: results are dataclasses,
failures are :mod:`layra_migrate.errors` exceptions.
"""

from __future__ import annotations
