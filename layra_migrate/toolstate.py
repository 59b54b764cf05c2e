"""Names of the collections where layra-migrate keeps its own state.

They live in the application database (so a mongodump of it carries the
journal along) and start with ``layra_migrate_`` so they are easy to spot and
never collide with Layra's collections. ``--dry-run`` never creates any of them.
"""

from __future__ import annotations

LEDGER = "layra_migrate_ledger"  # one record per migration run (and accepted changes)
LOCK = "layra_migrate_lock"  # the lease lock: at most one document
JOURNAL = "layra_migrate_journal"  # before-images and after-image hashes, per changed document
VERIFY_RUNS = "layra_migrate_verify"  # one record per verify run
DECOMMISSION_RUNS = "layra_migrate_decommission"  # one record per decommission/restore run

ALL = (LEDGER, LOCK, JOURNAL, VERIFY_RUNS, DECOMMISSION_RUNS)


def is_tool_collection(name: str) -> bool:
    return name.startswith("layra_migrate_")
