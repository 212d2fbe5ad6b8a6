"""A finished record on the wire: ``RequestRecord.to_json()``'s map, validated on decode.

Which keys exist and what type each has comes from ``logitsmatch.record``; this module adds
only the wire's size bounds per kind of field (a peer must not make us hold unbounded input).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from logitsmatch.record import REQUEST_FIELD_NAMES, REQUEST_FIELDS, Kind
from logitsmatch.serving.fields import Body
from logitsmatch.serving.limits import Limits

_MAX_INT = (1 << 31) - 1


def _readers(limits: Limits) -> dict[Kind, Callable[[Body, str], Any]]:
    max_tokens = limits.max_prompt_tokens + limits.max_tokens_to_generate
    return {
        Kind.TEXT: lambda b, f: b.string(f, limits.max_frame_bytes, nonempty=f == "finish_reason"),
        Kind.TOKENS: lambda b, f: list(b.int_list(f, max_tokens, 0, _MAX_INT)),
        Kind.FLOATS: lambda b, f: b.float_list(f, max_tokens),
        Kind.TOP_N: lambda b, f: _top_n(b, f, max_tokens),
        Kind.SECONDS: lambda b, f: b.number(f, 0.0, 1e9),
        Kind.COUNT: lambda b, f: b.integer(f, 0, _MAX_INT),
    }


def record_from_wire(outer: Body, value: Any, limits: Limits) -> dict[str, Any]:
    """Check every key of a reply's record; returns a fresh dict with the same keys.

    The fields every engine record has (``FieldSpec.always``) are required.
    """
    if not isinstance(value, dict):
        raise outer.fail("record", value, f"expected a map, got {type(value).__name__}")
    body = Body(outer.kind, value)
    body.request_id = outer.request_id
    body.only(set(REQUEST_FIELD_NAMES))
    readers = _readers(limits)
    return {
        spec.name: readers[spec.kind](body, spec.name)
        for spec in REQUEST_FIELDS
        if spec.always or spec.name in value
    }


def _top_n(body: Body, field: str, max_len: int) -> list[dict[str, float]]:
    value = body.get(field)
    if not isinstance(value, list) or len(value) > max_len:
        raise body.fail(field, value, "expected a list (one map per position)")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or len(item) > 20:
            raise body.fail(f"{field}[{i}]", item, "expected a map of at most 20 entries")
        for k, v in item.items():
            if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float)):
                raise body.fail(f"{field}[{i}]", item, "expected token-id string -> number")
        out.append({k: float(v) for k, v in item.items()})
    return out
