"""Compare a run's output JSON with its golden: Megatron-LM's rules and verdicts, and ours.

The verdict equals that of Megatron-LM's ``test_inference_regular_pipeline.py`` on its goldens:
only metrics listed in METRICS and present in the golden request are checked; every golden
request id must be in the run and the run may hold no other ids; a request with none of the
listed metrics fails; logprobs compare with an absolute tolerance (1e-3) after an equal-length
check; generated text compares on the common prefix, which must not be empty; throughput must
be >= 0.9× and < 1.2× the golden's median (the first sample is warm-up); peak memory within
±5%. Deliberately stricter: a non-finite value never passes (Megatron's ``math.isclose`` lets
inf == inf through), a golden without requests fails instead of passing vacuously, an empty
METRICS checks nothing and so fails (Megatron returns early and passes), a request the run
marks with ``error`` fails, and a METRICS entry this comparison cannot check (e.g.
``lifetime_prefill_token_count``; Megatron ignores unknown names, and crashes on that one)
fails instead of being ignored.
Deliberately looser: a one-sample throughput list is compared as that sample (Megatron's
``median(x[1:])`` raises on it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import median
from typing import Any

from logitsmatch.harness.judge.divergence import (
    abs_delta,
    analyse_divergence,
    drift_at_every_position,
    first_token_divergence,
)
from logitsmatch.harness.judge.tolerances import DEFAULT_METRICS, KNOWN_METRICS, Tolerances
from logitsmatch.harness.judge.verdict import (
    MetricResult,
    MetricStatus,
    RequestVerdict,
    Verdict,
    WorstPosition,
)
from logitsmatch.record import request_ids

WORST_POSITIONS = 5

_END = "<end>"


def compare(
    golden: Mapping[str, Any],
    current: Mapping[str, Any],
    tolerances: Tolerances | None = None,
    *,
    metrics: Sequence[str] | None = None,
    case: str = "unknown",
    platform: str = "unknown",
    teacher_forced: Mapping[str, Sequence[float]] | None = None,
) -> Verdict:
    """Compare ``current`` (a run's output JSON) with ``golden``; never raises on bad values.

    ``metrics``: the case's METRICS (default: tokens, logprobs, text). ``teacher_forced``:
    request id -> the current engine's logprobs of prompt + golden tokens; it adds the drift at
    every golden position to the verdict (informational: the tokens and logprobs decide).
    """
    tol = tolerances or Tolerances()
    wanted = tuple(DEFAULT_METRICS if metrics is None else metrics)
    golden_ids, current_ids = request_ids(golden), request_ids(current)
    run: list[MetricResult] = []
    if not golden_ids:
        run.append(
            MetricResult(
                "requests", MetricStatus.FAIL, "the golden holds no requests: nothing to check"
            )
        )
    unknown = _unknown_metrics(wanted)
    if unknown:
        run.append(unknown)
    unexpected = [rid for rid in current_ids if rid not in golden]
    if unexpected:
        run.append(
            MetricResult(
                "requests",
                MetricStatus.FAIL,
                f"the run has request ids that the golden lacks: {unexpected} "
                "(re-record the golden if the case's requests changed)",
            )
        )
    if "throughput" in wanted:
        run.append(_check_throughput(golden, current, tol))
    if "mem-max-allocated-bytes" in wanted:
        run.append(_check_memory(golden, current, tol))
    forced = teacher_forced or {}
    requests = tuple(
        _compare_request(rid, golden[rid], current.get(rid), wanted, tol, forced.get(rid))
        for rid in golden_ids
    )
    return Verdict(case, platform, requests, tuple(run), tol)


def _unknown_metrics(wanted: tuple[str, ...]) -> MetricResult | None:
    """A run-level failure naming the METRICS entries that no check here reads, or None."""
    # why: a listed metric that nothing compares would pass silently; a tripwire must say so
    # (the case loader refuses such a case; this covers callers that pass METRICS directly).
    unknown = [m for m in wanted if m not in KNOWN_METRICS]
    if not unknown:
        return None
    return MetricResult(
        "METRICS",
        MetricStatus.FAIL,
        f"METRICS lists {unknown}, which this comparison cannot check "
        f"(it checks {', '.join(KNOWN_METRICS)})",
    )


def describe_logprob_index(index: int, n_prompt_logprobs: int | None) -> str:
    """'logprob[i] (prompt token k)' or 'logprob[i] (generated token j)'."""
    if n_prompt_logprobs is None:
        return f"logprob[{index}]"
    if index < n_prompt_logprobs:
        return f"logprob[{index}] (prompt token {index + 1})"
    return f"logprob[{index}] (generated token {index - n_prompt_logprobs})"


def _compare_request(
    rid: str,
    golden: Any,
    current: Any,
    wanted: tuple[str, ...],
    tol: Tolerances,
    forced: Sequence[float] | None,
) -> RequestVerdict:
    if not isinstance(golden, Mapping):
        bad = MetricResult("request", MetricStatus.FAIL, "the golden entry is not an object")
        return RequestVerdict(rid, (bad,))
    if not isinstance(current, Mapping):
        why = "missing from the run" if current is None else "not an object in the run"
        return RequestVerdict(
            rid, (MetricResult("request", MetricStatus.FAIL, f"request {rid!r} {why}"),)
        )
    n_prompt = _n_prompt_logprobs(golden)
    results: list[MetricResult] = []
    if "error" in current:
        results.append(
            MetricResult("request", MetricStatus.FAIL, f"the run failed it: {current['error']}")
        )
    deltas: tuple[float, ...] = ()
    divergence = None
    for metric in ("generated_tokens", "logprobs", "generated_text", "routing_indices"):
        if metric not in wanted or metric not in golden:
            continue
        if metric not in current:
            results.append(
                MetricResult(metric, MetricStatus.FAIL, f"golden has {metric}, the run does not")
            )
        elif metric == "logprobs":
            result, deltas = _check_logprobs(golden[metric], current[metric], tol, n_prompt)
            results.append(result)
        elif metric == "generated_text":
            results.append(_check_text(golden[metric], current[metric]))
        else:
            results.append(_check_exact(metric, golden[metric], current[metric]))
            if metric == "generated_tokens" and results[-1].failed:
                divergence = analyse_divergence(golden, current, results[-1].position or 0)
    if not any(r.metric != "request" for r in results):
        results.append(
            MetricResult(
                "request",
                MetricStatus.FAIL,
                f"none of METRICS {list(wanted)} is in the golden request "
                f"(it has {sorted(golden)}): nothing was checked",
            )
        )
    drift = tuple(drift_at_every_position(golden, forced)) if forced is not None else None
    worst = _worst(golden.get("logprobs"), current.get("logprobs"), deltas, n_prompt)
    return RequestVerdict(rid, tuple(results), divergence, deltas, drift, n_prompt, worst)


def _check_exact(metric: str, golden: Any, current: Any) -> MetricResult:
    if not isinstance(golden, list) or not isinstance(current, list):
        ok = golden == current
        return MetricResult(
            metric,
            MetricStatus.PASS if ok else MetricStatus.FAIL,
            "equal" if ok else f"{golden!r} != {current!r}",
            golden=golden,
            current=current,
        )
    pos = first_token_divergence(golden, current)
    if pos is None:
        return MetricResult(metric, MetricStatus.PASS, f"{len(golden)} equal")
    g = golden[pos] if pos < len(golden) else _END
    c = current[pos] if pos < len(current) else _END
    return MetricResult(
        metric,
        MetricStatus.FAIL,
        f"differ at index {pos}: golden {g} vs current {c} "
        f"(lengths {len(golden)} vs {len(current)})",
        pos,
        g,
        c,
    )


def _check_logprobs(
    golden: Any, current: Any, tol: Tolerances, n_prompt: int | None
) -> tuple[MetricResult, tuple[float, ...]]:
    if not isinstance(golden, list) or not isinstance(current, list):
        return MetricResult(
            "logprobs", MetricStatus.FAIL, "logprobs is not a list on both sides"
        ), ()
    deltas = tuple(abs_delta(g, c) for g, c in zip(golden, current, strict=False))
    biggest = max(deltas, default=0.0)
    problems = []
    if len(golden) != len(current):
        problems.append(f"length {len(golden)} (golden) vs {len(current)} (current)")
    bad = next((i for i, d in enumerate(deltas) if not d <= tol.logprobs_abs), None)
    if bad is not None:
        problems.append(
            f"first beyond abs {tol.logprobs_abs:g} at "
            f"{describe_logprob_index(bad, n_prompt)}: golden {golden[bad]!r} vs "
            f"current {current[bad]!r} (|Δ| {deltas[bad]:.3g}); max |Δ| {biggest:.3g}"
        )
    if not problems:
        return MetricResult(
            "logprobs",
            MetricStatus.PASS,
            f"{len(golden)} within abs {tol.logprobs_abs:g} (max |Δ| {biggest:.3g})",
            max_abs_delta=biggest,
        ), deltas
    pos = bad if bad is not None else min(len(golden), len(current))
    g = golden[pos] if pos < len(golden) else _END
    c = current[pos] if pos < len(current) else _END
    return MetricResult(
        "logprobs", MetricStatus.FAIL, "; ".join(problems), pos, g, c, biggest
    ), deltas


def _check_text(golden: Any, current: Any) -> MetricResult:
    if not isinstance(golden, str) or not isinstance(current, str):
        return MetricResult(
            "generated_text", MetricStatus.FAIL, "generated_text is not a string on both sides"
        )
    n = min(len(golden), len(current))
    if n == 0:
        return MetricResult(
            "generated_text",
            MetricStatus.FAIL,
            f"empty text (golden {len(golden)} chars, "
            f"current {len(current)}): no common prefix to compare",
            0,
        )
    pos = next((i for i in range(n) if golden[i] != current[i]), None)
    if pos is None:
        return MetricResult(
            "generated_text", MetricStatus.PASS, f"equal on the common {n} characters"
        )
    return MetricResult(
        "generated_text",
        MetricStatus.FAIL,
        f"differ at character {pos}: golden "
        f"{golden[pos : pos + 20]!r} vs current {current[pos : pos + 20]!r}",
        pos,
        golden[pos : pos + 20],
        current[pos : pos + 20],
    )


def _check_throughput(
    golden: Mapping[str, Any], current: Mapping[str, Any], tol: Tolerances
) -> MetricResult:
    name = "throughput"
    if name not in golden:
        return MetricResult(
            name, MetricStatus.SKIPPED, "listed in METRICS but the golden has no throughput"
        )
    g, c, problem = _run_stats(name, golden, current)
    if problem:
        return MetricResult(name, MetricStatus.FAIL, problem, golden=g, current=c)
    lo, hi = tol.throughput_min_ratio, tol.throughput_max_ratio
    change = c / g - 1.0
    if c < lo * g:
        msg = f"{c:.4g} tok/s is below {lo:g}× the golden {g:.4g} tok/s: slower"
    elif not c < hi * g:
        msg = (
            f"{c:.4g} tok/s is {hi:g}× or more the golden {g:.4g} tok/s: faster, re-record "
            "the golden so that the gain is kept"
        )
    else:
        return MetricResult(
            name, MetricStatus.PASS, f"{c:.4g} vs golden {g:.4g} tok/s", None, g, c, change
        )
    return MetricResult(name, MetricStatus.FAIL, msg, None, g, c, change)


def _check_memory(
    golden: Mapping[str, Any], current: Mapping[str, Any], tol: Tolerances
) -> MetricResult:
    name = "mem-max-allocated-bytes"
    if name not in golden:
        return MetricResult(
            name, MetricStatus.SKIPPED, "listed in METRICS but the golden has no peak memory"
        )
    g, c, problem = _run_stats(name, golden, current)
    if problem:
        return MetricResult(name, MetricStatus.FAIL, problem, golden=g, current=c)
    change = c / g - 1.0
    if (1.0 - tol.memory_rel) * g <= c <= (1.0 + tol.memory_rel) * g:
        return MetricResult(
            name,
            MetricStatus.PASS,
            f"{c:.0f} B vs golden {g:.0f} B ({change:+.1%})",
            None,
            g,
            c,
            change,
        )
    return MetricResult(
        name,
        MetricStatus.FAIL,
        f"{c:.0f} B is {change:+.1%} from the golden {g:.0f} B (allowed ±{tol.memory_rel:.0%})",
        None,
        g,
        c,
        change,
    )


def _run_stats(
    name: str, golden: Mapping[str, Any], current: Mapping[str, Any]
) -> tuple[Any, Any, str | None]:
    if name not in current:
        return golden[name], None, f"the golden has {name}, the run does not record it"
    g, c = _summary(golden[name]), _summary(current[name])
    if g is None or c is None:
        return golden[name], current[name], f"{name} must be a finite number or list of them"
    if g <= 0:
        return g, c, f"golden {name} must be > 0, got {g}"
    return g, c, None


def _summary(value: Any) -> float | None:
    # why: the first sample of a list is warm-up (compile, allocator growth), as in Megatron-LM.
    values = value if isinstance(value, list) else [value]
    if not values or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    ):
        return None
    return float(median(values[1:] if len(values) > 1 else values))


def _n_prompt_logprobs(golden: Mapping[str, Any]) -> int | None:
    logprobs, tokens = golden.get("logprobs"), golden.get("generated_tokens")
    if isinstance(logprobs, list) and isinstance(tokens, list) and len(logprobs) >= len(tokens):
        return len(logprobs) - len(tokens)
    return None


def _worst(
    golden: Any, current: Any, deltas: tuple[float, ...], n_prompt: int | None
) -> tuple[WorstPosition, ...]:
    order = sorted((i for i, d in enumerate(deltas) if d > 0), key=lambda i: -deltas[i])
    return tuple(
        WorstPosition(i, describe_logprob_index(i, n_prompt), golden[i], current[i], deltas[i])
        for i in order[:WORST_POSITIONS]
    )
