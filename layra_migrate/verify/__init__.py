"""``verify``: one real test chat per distinct provider target, through the OpenAI SDK.

Split by concern:

- :mod:`.shaping`: the request Layra sends (effective parameters, distinct shapes);
- :mod:`.targets`: which targets to probe (database or plan), and their shapes;
- :mod:`.classify`: an error becomes a status, a scrubbed detail and a hint;
- :mod:`.probing`: the probe itself (one deadline, one retry, bounded concurrency);
- :mod:`.report` and :mod:`.run`: the report, its record, the whole run;
- :mod:`.against_proxy`: ``verify --against-proxy``, the same request through the
  running LiteLLM proxy and directly, compared name by name.

Core modules: they never print and never exit. Keys live only in
:class:`VerifyTarget` (``repr=False``) and the SDK client.
"""

from __future__ import annotations

from layra_migrate.verify.outcomes import (
    AUTH_FAILED,
    BAD_REQUEST,
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT_S,
    MAX_SHAPES,
    MODEL_NOT_FOUND,
    OK,
    PROBE_PROMPT,
    PROTOCOL_ERROR,
    RATE_LIMITED,
    SCHEMA,
    SERVER_ERROR,
    SKIPPED,
    STATUSES,
    TIMEOUT,
    UNREACHABLE,
)
from layra_migrate.verify.probing import ProbeResult, probe, probe_all
from layra_migrate.verify.report import VerifyReport, last_verify_run, record_run
from layra_migrate.verify.run import run_verify
from layra_migrate.verify.shaping import ProbeParams, Shape, config_params, request_kwargs
from layra_migrate.verify.targets import (
    TargetSet,
    VerifyTarget,
    database_targets,
    expand_shapes,
    filter_provider,
    plan_targets,
    provider_of,
)

__all__ = [
    "AUTH_FAILED",
    "BAD_REQUEST",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_TIMEOUT_S",
    "MAX_SHAPES",
    "MODEL_NOT_FOUND",
    "OK",
    "PROBE_PROMPT",
    "PROTOCOL_ERROR",
    "RATE_LIMITED",
    "SCHEMA",
    "SERVER_ERROR",
    "SKIPPED",
    "STATUSES",
    "TIMEOUT",
    "UNREACHABLE",
    "ProbeParams",
    "ProbeResult",
    "Shape",
    "TargetSet",
    "VerifyReport",
    "VerifyTarget",
    "config_params",
    "database_targets",
    "expand_shapes",
    "filter_provider",
    "last_verify_run",
    "plan_targets",
    "probe",
    "probe_all",
    "provider_of",
    "record_run",
    "request_kwargs",
    "run_verify",
]
