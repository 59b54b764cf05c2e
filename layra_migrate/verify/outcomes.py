"""The vocabulary of a verify run: its JSON schema id, probe statuses and limits."""

from __future__ import annotations

SCHEMA = "layra-migrate/verify/v1"

OK = "ok"
AUTH_FAILED = "auth_failed"
MODEL_NOT_FOUND = "model_not_found"
RATE_LIMITED = "rate_limited"
SERVER_ERROR = "server_error"
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"
PROTOCOL_ERROR = "protocol_error"
BAD_REQUEST = "bad_request"  # extension of the v1 enum: a 400/422 the provider gave the parameters
SKIPPED = "skipped"
STATUSES = (
    OK,
    AUTH_FAILED,
    MODEL_NOT_FOUND,
    RATE_LIMITED,
    SERVER_ERROR,
    TIMEOUT,
    UNREACHABLE,
    PROTOCOL_ERROR,
    BAD_REQUEST,
    SKIPPED,
)

DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT_S = 30.0
PROBE_PROMPT = "Reply with the single word OK."
RETRY_BACKOFF_S = 0.5
MAX_BACKOFF_S = 2.0
MAX_SHAPES = 3  # distinct parameter shapes probed per target, the most common first
