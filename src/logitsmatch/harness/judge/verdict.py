"""The structured result of comparing one run against its golden: plain frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from logitsmatch.harness.judge.tolerances import Tolerances
from logitsmatch.harness.text_enum import TextEnum


class MetricStatus(TextEnum):
    """How one metric compared."""

    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"  # listed in METRICS, but the golden has nothing to compare


class DivergenceKind(TextEnum):
    """What the first diverging generated token was (see ``Divergence``)."""

    NEAR_TIE = "near-tie"
    REAL_CHANGE = "real change"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class MetricResult:
    """One metric of one request (or of the whole run, e.g. throughput).

    ``position`` is the first diverging index in that metric's own list (token index, logprob
    index, character index); ``golden``/``current`` are the values there; ``max_abs_delta`` is
    the largest |golden - current| over the compared positions (logprobs) or the relative change
    (memory, throughput ratio - 1).
    """

    metric: str
    status: MetricStatus
    message: str
    position: int | None = None
    golden: Any = None
    current: Any = None
    max_abs_delta: float | None = None

    def __post_init__(self) -> None:
        if self.status not in MetricStatus.words():
            raise ValueError(f"status must be pass, fail or skipped, got {self.status!r}")
        object.__setattr__(self, "status", MetricStatus(self.status))

    @property
    def failed(self) -> bool:
        return self.status is MetricStatus.FAIL


@dataclass(frozen=True)
class Divergence:
    """What happened at the first generated token where golden and current differ.

    ``kind`` is ``near-tie`` (each side's token is in the other side's top-n there),
    ``real change`` (one is not), or ``unknown`` (no top-n logprobs to tell).
    ``current_gap`` / ``golden_gap``: top-1 minus top-2 logprob at that position on each side.
    """

    position: int
    golden_token: int | None
    current_token: int | None
    kind: DivergenceKind
    current_gap: float | None = None
    golden_gap: float | None = None
    note: str = ""
    golden_text: str | None = None  # the tokens decoded, when the runner had the tokenizer
    current_text: str | None = None

    def describe(self) -> str:
        """One sentence for a failure message: ``golden 358 ' the' vs current 357 ' a'``."""
        golden = _token(self.golden_token, self.golden_text)
        current = _token(self.current_token, self.current_text)
        text = (
            f"first diverging token at generated position {self.position}: golden "
            f"{golden} vs current {current}: {self.kind}"
        )
        gaps = []
        if self.current_gap is not None:
            gaps.append(f"current top-1/top-2 gap {self.current_gap:.4g}")
        if self.golden_gap is not None:
            gaps.append(f"golden top-1/top-2 gap {self.golden_gap:.4g}")
        if gaps:
            text += " (" + ", ".join(gaps) + ")"
        return text + (f"; {self.note}" if self.note else "")


def _token(token: int | None, text: str | None) -> str:
    return f"{token} {text!r}" if token is not None and text is not None else str(token)


@dataclass(frozen=True)
class WorstPosition:
    """One of the logprob positions that moved most: where, both values, |Δ|."""

    index: int
    label: str
    golden: float
    current: float
    delta: float


@dataclass(frozen=True)
class RequestVerdict:
    """All metrics of one request id of the golden.

    ``logprob_deltas``: |Δ logprob| at every common position of the two logprob lists (inf where
    either side is not finite). ``drift``: the same against a teacher-forced score of the golden
    continuation, when the runner computed one. ``n_prompt_logprobs`` maps a logprob index to a
    generated-token position (index - n_prompt_logprobs). ``worst``: the positions with the
    largest |Δ logprob|, largest first.
    """

    request_id: str
    metrics: tuple[MetricResult, ...]
    divergence: Divergence | None = None
    logprob_deltas: tuple[float, ...] = ()
    drift: tuple[float, ...] | None = None
    n_prompt_logprobs: int | None = None
    worst: tuple[WorstPosition, ...] = ()

    @property
    def passed(self) -> bool:
        return not any(m.failed for m in self.metrics)

    def failures(self) -> list[MetricResult]:
        return [m for m in self.metrics if m.failed]


@dataclass(frozen=True)
class Verdict:
    """The comparison of one case on one platform: per-request and run-level results."""

    case: str
    platform: str
    requests: tuple[RequestVerdict, ...]
    run_metrics: tuple[MetricResult, ...]
    tolerances: Tolerances

    @property
    def target_id(self) -> str:
        return f"{self.case}@{self.platform}"

    @property
    def passed(self) -> bool:
        return not any(m.failed for m in self.run_metrics) and all(r.passed for r in self.requests)

    def failures(self) -> list[tuple[str | None, MetricResult]]:
        """(request id or None for run-level, failed metric), in report order."""
        out: list[tuple[str | None, MetricResult]] = [
            (None, m) for m in self.run_metrics if m.failed
        ]
        for request in self.requests:
            out.extend((request.request_id, m) for m in request.failures())
        return out

    def request(self, request_id: str) -> RequestVerdict:
        for request in self.requests:
            if request.request_id == request_id:
                return request
        raise KeyError(f"{self.target_id}: no request {request_id!r} in the verdict")
