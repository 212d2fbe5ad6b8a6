"""A finished record on the wire: FinishedRecord.to_json()'s map, validated on decode."""

from __future__ import annotations

from typing import Any

from logitsmatch.serving.fields import Body
from logitsmatch.serving.limits import Limits

RECORD_FIELDS = {
    "input_prompt",
    "generated_text",
    "generated_tokens",
    "logprobs",
    "latency",
    "finish_reason",
    "top_n_logprobs",
    "error",
}


def record_from_wire(outer: Body, value: Any, limits: Limits) -> dict[str, Any]:
    """Check every key of a reply's record; returns a fresh dict with the same keys."""
    if not isinstance(value, dict):
        raise outer.fail("record", value, f"expected a map, got {type(value).__name__}")
    body = Body(outer.kind, value)
    body.request_id = outer.request_id
    body.only(RECORD_FIELDS)
    max_tokens = limits.max_prompt_tokens + limits.max_tokens_to_generate
    out: dict[str, Any] = {
        "input_prompt": body.string("input_prompt", limits.max_prompt_bytes),
        "generated_text": body.string("generated_text", limits.max_frame_bytes),
        "generated_tokens": list(
            body.int_list("generated_tokens", limits.max_tokens_to_generate, 0, (1 << 31) - 1)
        ),
        "latency": body.number("latency", 0.0, 1e9),
        "finish_reason": body.string("finish_reason", 32, nonempty=True),
    }
    if "logprobs" in value:
        out["logprobs"] = body.float_list("logprobs", max_tokens)
    if "top_n_logprobs" in value:
        out["top_n_logprobs"] = _top_n(body, value["top_n_logprobs"], limits)
    if "error" in value:
        out["error"] = body.string("error", limits.max_text_chars)
    return out


def _top_n(body: Body, value: Any, limits: Limits) -> list[dict[str, float]]:
    if not isinstance(value, list) or len(value) > limits.max_tokens_to_generate:
        raise body.fail("top_n_logprobs", value, "expected a list (one map per generated token)")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or len(item) > 20:
            raise body.fail(f"top_n_logprobs[{i}]", item, "expected a map of at most 20 entries")
        for k, v in item.items():
            if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float)):
                raise body.fail(f"top_n_logprobs[{i}]", item, "expected token-id string -> number")
        out.append({k: float(v) for k, v in item.items()})
    return out
