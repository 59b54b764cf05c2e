"""Bundled migrations (shipped as ``layra_migrate.migrations``). One file per migration:
``NNNN_slug.py``; see ``layra-migrate new --help`` for the context API."""
