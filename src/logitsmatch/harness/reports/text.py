"""Plain-text lines that explain a failed verdict; shared by every report format."""

from __future__ import annotations

from logitsmatch.harness.judge.compare import describe_logprob_index
from logitsmatch.harness.judge.verdict import RequestVerdict, Verdict


def counted(n: int, noun: str) -> str:
    """``1 request``, ``2 requests``: a count with its noun in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def verdict_lines(verdict: Verdict) -> list[str]:
    """One line per failed metric (with the near-tie analysis under a token change), then the
    teacher-forced drift of each request that has one."""
    lines = []
    for rid, metric in verdict.failures():
        where = f"request {rid!r} " if rid is not None else ""
        lines.append(f"  {where}{metric.metric}: {metric.message}")
        if rid is not None and metric.metric == "generated_tokens":
            divergence = verdict.request(rid).divergence
            if divergence is not None:
                lines.append(f"    {divergence.describe()}")
    for request in verdict.requests:
        if request.drift and not request.passed:
            lines.append(f"  request {request.request_id!r} {drift_summary(request, verdict)}")
    return lines


def drift_summary(request: RequestVerdict, verdict: Verdict) -> str:
    """'teacher-forced drift: max |Δ| x at <position>; k of n positions beyond abs tol'."""
    drift = request.drift or ()
    tol = verdict.tolerances.logprobs_abs
    worst = max(range(len(drift)), key=lambda i: drift[i], default=None)
    if worst is None:
        return "teacher-forced drift: no positions"
    beyond = sum(1 for d in drift if not d <= tol)
    return (
        f"teacher-forced drift: max |Δ| {drift[worst]:.3g} at "
        f"{describe_logprob_index(worst, request.n_prompt_logprobs)}; {beyond} of "
        f"{len(drift)} positions beyond abs {tol:g}"
    )
