"""Request shaping: a probe carries exactly the parameters Layra would send.

Reproduced from Layra's own code (liweiphys/layra ``backend/app/rag/llm_service.py``
and ``backend/app/workflow/llm_service.py``, and the workflow editor
``frontend/src/components/Workflow/FlowEditor.tsx`` that turns a node's camelCase
``modelConfig`` into the request):

- the editor sends ``-1`` for a parameter whose ``use<Param>Default`` flag is true
  (``useTemperatureDefault``, ``useMaxLengthDefault``, ``useTopPDefault``), whatever number
  is stored beside the flag;
- the backend then omits every parameter equal to ``-1`` (provider default) and clamps
  the others: ``temperature`` and ``top_P`` into [0, 1], ``max_length`` into
  [1024, 1048576], sent as ``max_tokens``;
- the call is ``chat.completions.create(model=..., messages=..., stream=True,
  stream_options={"include_usage": True}, **optional_args)``: nothing else.
- ``top_K``/``score_threshold`` (flags ``useTopKDefault``/``useScoreThresholdDefault``)
  govern Layra's retrieval, not the chat request: they never change a probe.

So a probe adds no parameter of its own (no token budget): the shape the provider
sees is the shape the app will send after the cut-over. A stored value that is not a
number (a string, ``null``, a boolean) would not reach the provider as that parameter
either way; it is treated as not sent. (The Camier/KannaDoc fork clamps temperature
to [0, 2] instead of [0, 1]; the upstream rule is the one modelled here.)

Each distinct effective parameter set is a *shape*. A target referenced with several
shapes is probed once per shape, at most :data:`MAX_SHAPES`, the most common first.
Soft-deleted documents (``is_delete: true``) never shape a probe.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from layra_migrate.verify.outcomes import MAX_SHAPES, PROBE_PROMPT

# (request parameter, Layra's stored names camelCase first, the UI flag, low, high)
_RULES: tuple[tuple[str, tuple[str, ...], str, float, float], ...] = (
    ("temperature", ("temperature",), "useTemperatureDefault", 0.0, 1.0),
    ("max_tokens", ("maxLength", "max_length"), "useMaxLengthDefault", 1024.0, 1048576.0),
    ("top_p", ("topP", "top_P"), "useTopPDefault", 0.0, 1.0),
)
PARAM_FIELDS: dict[str, tuple[str, ...]] = {rule[0]: rule[1] for rule in _RULES}
DEFAULT_FLAGS: dict[str, str] = {rule[0]: rule[2] for rule in _RULES}


@dataclass(frozen=True)
class ProbeParams:
    """The optional parameters of one request; ``None`` means not sent (provider default)."""

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in (
                ("temperature", self.temperature),
                ("max_tokens", self.max_tokens),
                ("top_p", self.top_p),
            )
            if v is not None
        }

    def describe(self) -> str:
        """``temperature=0.3, max_tokens=2048`` or ``provider defaults``."""
        sent = self.as_dict()
        return ", ".join(f"{k}={v:g}" for k, v in sent.items()) if sent else "provider defaults"


def _stored_number(cfg: dict[str, Any], names: tuple[str, ...]) -> float | None:
    for name in names:
        value = cfg.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)
    return None


def config_params(cfg: dict[str, Any]) -> ProbeParams:
    """The parameters one stored model configuration makes Layra send (either spelling)."""
    found: dict[str, float] = {}
    for param, names, flag, low, high in _RULES:
        if cfg.get(flag) is True:
            continue
        value = _stored_number(cfg, names)
        if value is None or value == -1:
            continue
        found[param] = min(max(value, low), high)
    max_tokens = found.get("max_tokens")
    return ProbeParams(
        found.get("temperature"),
        None if max_tokens is None else int(max_tokens),
        found.get("top_p"),
    )


@dataclass(frozen=True)
class Shape:
    """One distinct parameter set and how many (live) references send it."""

    params: ProbeParams
    references: int


class ShapeTally:
    """Per target: how many live references send each distinct shape."""

    def __init__(self) -> None:
        self.counts: Counter[ProbeParams] = Counter()

    def add(self, params: ProbeParams) -> None:
        self.counts[params] += 1

    def shapes(self, limit: int = MAX_SHAPES) -> list[Shape]:
        """The most common shapes first (ties: fewer parameters, then by value), at most
        ``limit``; with no live reference, the provider-default shape."""
        if not self.counts:
            return [Shape(ProbeParams(), 0)]
        ranked = sorted(
            self.counts.items(), key=lambda kv: (-kv[1], len(kv[0].as_dict()), repr(kv[0]))
        )
        return [Shape(p, n) for p, n in ranked[:limit]]

    @property
    def distinct(self) -> int:
        return len(self.counts)


def request_kwargs(model: str, params: ProbeParams) -> dict[str, Any]:
    """The ``chat.completions.create`` arguments of a probe, exactly as Layra sends them."""
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROBE_PROMPT}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    kwargs.update(params.as_dict())
    return kwargs
