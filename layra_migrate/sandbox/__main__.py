from __future__ import annotations

from layra_migrate.sandbox.run import main

raise SystemExit(main())
