"""Beyond pass/fail: was the first changed token a near-tie, and how far does every position drift.

Plain Python over output-JSON request entries (the output record: README.md, "The engine",
and ``logitsmatch.harness.goldens.schema``); ``top_n_logprobs`` is a list, one per generated
token, of ``{"<token id>": logprob}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from logitsmatch.harness.judge.verdict import Divergence, DivergenceKind, Verdict

# why 0.25 nats: a benign numerical change moves logprobs by rounding-sized amounts (bf16 vs
# fp32: 0.06-0.15 before the first differing token, tests/integration/engine/test_bf16.py), so it
# can only swap two tokens that close. Two tokens 5 nats apart (both still in a top-5) swap only
# when something really changed.
NEAR_TIE_NATS = 0.25


def abs_delta(golden: Any, current: Any) -> float:
    """|golden - current|, or inf when either side is not a finite number (never within a tol)."""
    if not (_finite(golden) and _finite(current)):
        return math.inf
    return abs(float(golden) - float(current))


def first_token_divergence(golden: Sequence[int], current: Sequence[int]) -> int | None:
    """Index of the first differing token; the shorter length when one is a prefix; else None."""
    for i, (g, c) in enumerate(zip(golden, current, strict=False)):
        if g != c:
            return i
    return None if len(golden) == len(current) else min(len(golden), len(current))


def analyse_divergence(
    golden: Mapping[str, Any], current: Mapping[str, Any], position: int
) -> Divergence:
    """Classify the generated token at ``position`` where golden and current differ.

    A near-tie is what a benign numerical change (another reduction order, bf16 rounding)
    produces: each side's token is among the other side's top-n candidates there, within
    ``NEAR_TIE_NATS`` of the token chosen. Where the golden carries no top-n, only the current
    side can be checked, and the note says so.
    """
    g_tokens, c_tokens = golden.get("generated_tokens", []), current.get("generated_tokens", [])
    g_tok = g_tokens[position] if position < len(g_tokens) else None
    c_tok = c_tokens[position] if position < len(c_tokens) else None
    c_top, g_top = _top_n_at(current, position), _top_n_at(golden, position)
    c_gap, g_gap = _gap(c_top), _gap(g_top)
    if g_tok is None or c_tok is None:
        side, n = ("golden", len(g_tokens)) if g_tok is None else ("current", len(c_tokens))
        return Divergence(
            position,
            g_tok,
            c_tok,
            DivergenceKind.REAL_CHANGE,
            c_gap,
            g_gap,
            f"{side} stopped after {n} tokens",
        )
    if c_top is None:
        return Divergence(
            position,
            g_tok,
            c_tok,
            DivergenceKind.UNKNOWN,
            None,
            g_gap,
            "the run has no top-n logprobs (ask the engine for --top-n-logprobs)",
        )
    in_current = g_tok in c_top and _margin(c_top, c_tok, g_tok) <= NEAR_TIE_NATS
    note = ""
    if g_top is None:
        in_golden = True
        note = "the golden has no top-n logprobs; only the current side was checked"
    else:
        in_golden = c_tok in g_top and _margin(g_top, g_tok, c_tok) <= NEAR_TIE_NATS
    if g_tok in c_top:
        margin = _margin(c_top, c_tok, g_tok)
        note = "; ".join(
            x
            for x in (note, f"golden token is {margin:.4g} below the current token in the run")
            if x
        )
    kind = DivergenceKind.NEAR_TIE if in_current and in_golden else DivergenceKind.REAL_CHANGE
    return Divergence(position, g_tok, c_tok, kind, c_gap, g_gap, note)


def drift_at_every_position(
    golden_request: Mapping[str, Any], scores: Sequence[float]
) -> list[float]:
    """|Δ logprob| at every position of the golden continuation, under teacher forcing.

    ``scores`` are the current engine's logprobs of prompt + the golden's generated tokens
    (prompt logprobs, then one per golden token: the golden's own layout), so the drift is
    measured at every golden position, also after the point where free generation diverged.
    A non-finite value on either side gives inf.
    """
    golden = golden_request.get("logprobs")
    if not isinstance(golden, list):
        raise ValueError("golden request has no 'logprobs' list to measure drift against")
    if len(scores) != len(golden):
        raise ValueError(
            f"teacher-forced scores have {len(scores)} logprobs, the golden has "
            f"{len(golden)}: score prompt + golden tokens with the same tokenizer"
        )
    return [abs_delta(g, s) for g, s in zip(golden, scores, strict=True)]


def _top_n_at(request: Mapping[str, Any], position: int) -> dict[int, float] | None:
    tops = request.get("top_n_logprobs")
    if not isinstance(tops, list) or position >= len(tops) or not isinstance(tops[position], dict):
        return None
    try:
        # why: JSON keys are strings; the engine writes token ids. Megatron writes token *text*,
        # which cannot be matched against ids, so such entries count as absent.
        return {int(k): float(v) for k, v in tops[position].items()}
    except (TypeError, ValueError):
        return None


def _margin(top: dict[int, float], chosen: int, other: int) -> float:
    """How far ``other`` is below the ``chosen`` token in one side's top-n (nats)."""
    return top.get(chosen, max(top.values())) - top[other]


def _gap(top: dict[int, float] | None) -> float | None:
    if not top or len(top) < 2:
        return None
    first, second = sorted(top.values(), reverse=True)[:2]
    return first - second


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def with_token_text(verdict: Verdict, decode: Callable[[list[int]], str]) -> Verdict:
    """``verdict`` with each first diverging token also given as text (``decode``: the
    engine's tokenizer), so a report reads ``358 ' the'`` and not only an id."""

    def text(token: int | None) -> str | None:
        return decode([token]) if token is not None else None

    requests = tuple(
        replace(
            r,
            divergence=replace(
                r.divergence,
                golden_text=text(r.divergence.golden_token),
                current_text=text(r.divergence.current_token),
            ),
        )
        if r.divergence is not None
        else r
        for r in verdict.requests
    )
    return replace(verdict, requests=requests)
