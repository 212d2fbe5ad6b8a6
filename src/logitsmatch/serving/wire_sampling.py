"""Sampling parameters on the wire: a map whose keys are SamplingParams fields.

Absent keys take SamplingParams' defaults; unknown keys are refused. The engine's own
``__post_init__`` then checks the combination (e.g. top_p with greedy), and its ValueError
becomes a ProtocolError naming the sampling map.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.fields import INT64, Body
from logitsmatch.serving.limits import Limits

SAMPLING_FIELDS = frozenset(f.name for f in fields(SamplingParams))


def sampling_to_wire(params: SamplingParams) -> dict[str, Any]:
    """Every field, stop_strings as a list (msgpack has no tuple)."""
    out = asdict(params)
    out["stop_strings"] = list(params.stop_strings)
    return out


def sampling_from_wire(outer: Body, value: Any, limits: Limits) -> SamplingParams:
    """Validate a sampling map read from ``outer``'s ``sampling`` field."""
    if not isinstance(value, dict):
        raise outer.fail("sampling", value, f"expected a map, got {type(value).__name__}")
    body = Body(outer.kind, value)
    body.request_id = outer.request_id
    body.only(set(SAMPLING_FIELDS))
    kw: dict[str, Any] = {}
    if "num_tokens_to_generate" in value:
        kw["num_tokens_to_generate"] = body.integer(
            "num_tokens_to_generate", 1, limits.max_tokens_to_generate
        )
    if "temperature" in value:
        kw["temperature"] = body.number("temperature", 1e-6, 1e6)
    if "top_k" in value:
        kw["top_k"] = body.integer("top_k", 0, (1 << 31) - 1)
    if "top_p" in value:
        kw["top_p"] = body.number("top_p", 0.0, 1.0)
    if "seed" in value:
        kw["seed"] = body.integer("seed", *INT64)
    if value.get("termination_id") is not None:
        # -1: never stop on a token (the engine compares ids, and no id is -1)
        kw["termination_id"] = body.integer("termination_id", -1, (1 << 31) - 1)
    if "stop_strings" in value:
        kw["stop_strings"] = _stop_strings(body, value["stop_strings"], limits)
    if "return_log_probs" in value:
        kw["return_log_probs"] = body.boolean("return_log_probs")
    if "top_n_logprobs" in value:
        kw["top_n_logprobs"] = body.integer("top_n_logprobs", 0, 20)
    if "return_prompt_top_n_logprobs" in value:
        kw["return_prompt_top_n_logprobs"] = body.boolean("return_prompt_top_n_logprobs")
    try:
        return SamplingParams(**kw)
    except ValueError as e:
        raise outer.fail("sampling", value, str(e)) from None


def _stop_strings(body: Body, value: Any, limits: Limits) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise body.fail("stop_strings", value, "expected a list of strings")
    if len(value) > limits.max_stop_strings:
        raise body.fail("stop_strings", len(value), f"more than {limits.max_stop_strings} items")
    for i, s in enumerate(value):
        if not isinstance(s, str) or not s or len(s) > limits.max_text_chars:
            raise body.fail(
                f"stop_strings[{i}]",
                s,
                f"expected a non-empty string of at most {limits.max_text_chars} chars",
            )
    return tuple(value)
