"""Rich renderings of result objects, one module per command."""
