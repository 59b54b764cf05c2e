"""layra-migrate: retire a Layra deployment's LiteLLM proxy, reversibly."""

from __future__ import annotations

__version__ = "0.1.0"
