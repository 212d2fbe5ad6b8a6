"""What ``record`` checks before it writes a golden: that ``check`` could trust it.

A golden is the reference every later run is held to, so a run that answered the wrong
requests, left a listed metric out, or gave other numbers on a repeat must not become one:
``check`` would then pass against it. ``audit_output`` names the first such problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from logitsmatch.engine.generate_args import is_written
from logitsmatch.harness.cases import Case
from logitsmatch.harness.goldens.diff import diff_goldens
from logitsmatch.harness.judge import Verdict, compare
from logitsmatch.harness.reports.text import counted
from logitsmatch.record import request_ids

# Metrics read from each request / from the run as a whole.
REQUEST_METRICS = ("generated_tokens", "logprobs", "generated_text", "routing_indices")
RUN_METRICS = ("throughput", "mem-max-allocated-bytes")
_SHOWN = 5


def expected_ids(case: Case, count: int) -> list[str]:
    """The request ids a run of ``count`` prompts must write: all of them, or with the
    builtin engine's ``--output-every-n-results`` n, every n-th and the last."""
    builtin = case.engine == "builtin"
    every_n = int(case.engine_args.get("--output-every-n-results", 1)) if builtin else 1
    return [str(i) for i in range(count) if is_written(i, count, every_n)]


def audit_output(case: Case, prompts: Sequence[str], output: Mapping[str, Any]) -> str | None:
    """Why ``output`` (a run of ``case`` on ``prompts``) must not become a golden, or None."""
    want = expected_ids(case, len(prompts))
    have = request_ids(output)
    missing = [rid for rid in want if rid not in have]
    if missing:
        return f"the run lacks {_few(missing)} of the case's {counted(len(want), 'request')}"
    extra = [rid for rid in have if rid not in set(want)]
    if extra:
        return f"the run has requests the case does not ask for: {_few(extra)}"
    for rid in want:
        problem = _request_problem(case, rid, prompts[int(rid)], output[rid])
        if problem:
            return f"request {rid!r}: {problem}"
    for metric in RUN_METRICS:
        if metric in case.metrics and metric not in output:
            return f"METRICS lists {metric}, which the run did not report"
    verdict = compare(output, output, case.tolerances, metrics=case.metrics, case=case.name)
    if not verdict.passed:
        return f"check would not pass it against itself: {_failures(verdict)}"
    return None


def repeat_disagreement(case: Case, first: Mapping[str, Any], other: Mapping[str, Any]) -> str:
    """How a repeat differs from the first run beyond what check allows ("" when it does not):
    any difference when the case is DETERMINISTIC, else a failure within its tolerances."""
    if case.deterministic:
        diff = diff_goldens(first, other, path="the repeats")
        return "" if diff.empty else f"the case is DETERMINISTIC: {diff.format()}"
    verdict = compare(first, other, case.tolerances, metrics=case.metrics, case=case.name)
    return _failures(verdict)


def _request_problem(case: Case, rid: str, prompt: str, record: Mapping[str, Any]) -> str | None:
    given = record.get("input_prompt")
    if isinstance(given, str) and given != prompt:
        return f"input_prompt {given[:60]!r} is not the case's prompt {int(rid)}: {prompt[:60]!r}"
    tokens = record.get("generated_tokens")
    if not isinstance(tokens, list) or not tokens:
        return "no generated_tokens: an empty generation cannot be a golden"
    for metric in REQUEST_METRICS:
        if metric in case.metrics and metric not in record:
            return f"METRICS lists {metric}, which the run did not write"
    if "logprobs" in case.metrics and not record["logprobs"]:
        return "empty logprobs, though METRICS lists logprobs"
    return None


def _failures(verdict: Verdict) -> str:
    """The verdict's first failures, ``request: metric: why`` each ("" when it passed)."""
    return "; ".join(
        f"{rid or 'run'}: {m.metric}: {m.message}" for rid, m in verdict.failures()[:_SHOWN]
    )


def _few(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_SHOWN])
    return shown + (f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else "")
