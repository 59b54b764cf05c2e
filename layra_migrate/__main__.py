from __future__ import annotations

from layra_migrate.cli import main

if __name__ == "__main__":
    main()
