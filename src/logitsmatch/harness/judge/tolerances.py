"""Per-metric tolerances of the comparison and their defaults (Megatron-LM's); plain Python.

The defaults are those of Megatron-LM's ``test_inference_regular_pipeline.py`` (see
``logitsmatch.harness.judge.compare``); a case overrides them in TOLERANCES.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The metrics a case may list in METRICS, in the order reports show them.
KNOWN_METRICS = (
    "generated_tokens",
    "logprobs",
    "generated_text",
    "routing_indices",
    "throughput",
    "mem-max-allocated-bytes",
)
# What `compare` checks when no case says otherwise: the numbers that must not drift. Throughput
# and memory depend on the machine, so a case opts into them.
DEFAULT_METRICS = ("generated_tokens", "logprobs", "generated_text")

_FORMS = {
    "logprobs": ("abs",),
    "throughput": ("min_ratio", "max_ratio"),
    "mem-max-allocated-bytes": ("rel",),
}


class ToleranceError(ValueError):
    """A TOLERANCES entry that is not a known metric/field or not a positive number."""


@dataclass(frozen=True)
class Tolerances:
    """How far a value may move from the golden and still pass.

    ``logprobs_abs``: |golden - current| <= this at every position (Megatron-LM uses 1e-3).
    ``throughput_min_ratio`` / ``throughput_max_ratio``: current / golden must be >= min and
    < max (a big speed-up also fails so that the golden gets refreshed, as in Megatron-LM).
    ``memory_rel``: current peak memory within golden × (1 ± this).
    """

    logprobs_abs: float = 1e-3
    throughput_min_ratio: float = 0.9
    throughput_max_ratio: float = 1.2
    memory_rel: float = 0.05

    def __post_init__(self) -> None:
        for name in ("logprobs_abs", "throughput_min_ratio", "throughput_max_ratio", "memory_rel"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ToleranceError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.throughput_min_ratio >= self.throughput_max_ratio:
            raise ToleranceError(
                f"throughput min_ratio ({self.throughput_min_ratio}) must be below max_ratio "
                f"({self.throughput_max_ratio})"
            )

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Tolerances:
        """Build from a case's TOLERANCES, e.g. ``{logprobs: {abs: 2e-3}}``.

        Raises ToleranceError naming the metric/field and the accepted forms.
        """
        values: dict[str, float] = {}
        for metric, fields in raw.items():
            if metric not in _FORMS:
                raise ToleranceError(
                    f"unknown metric {metric!r}; tolerances exist for {', '.join(_FORMS)}"
                )
            if not isinstance(fields, Mapping):
                raise ToleranceError(
                    f"{metric}: expected a mapping of {', '.join(_FORMS[metric])}, got {fields!r}"
                )
            for field, value in fields.items():
                if field not in _FORMS[metric]:
                    raise ToleranceError(
                        f"{metric}.{field}: unknown field; expected one of "
                        f"{', '.join(_FORMS[metric])}"
                    )
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ToleranceError(f"{metric}.{field}: expected a number, got {value!r}")
                values[_attribute(metric, field)] = float(value)
        return cls(**values)


def _attribute(metric: str, field: str) -> str:
    if metric == "mem-max-allocated-bytes":
        return "memory_rel"
    return f"{metric}_{field}"
