"""Repeated trials as a determinism check: every trial of the same requests must produce the
same records (all but the timing fields), bit for bit. Plain Python, no torch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from logitsmatch.record import REQUEST_FIELDS, RequestRecord

# why not timing fields: latency, ttft and step counts change from run to run by design.
COMPARED = tuple(spec.name for spec in REQUEST_FIELDS if not spec.timing)


def first_difference(first: Sequence[RequestRecord], later: Sequence[RequestRecord]) -> str | None:
    """Where ``later``'s records first differ from ``first``'s (same requests), or None.

    Names the request, the field and, for a list, the position and both values."""
    by_id = {r.request_id: r for r in later}
    for a in first:
        b = by_id.get(a.request_id)
        if b is None:
            return f"request {a.request_id}: missing"
        for name in COMPARED:
            where = _where(getattr(a, name), getattr(b, name))
            if where is not None:
                return f"request {a.request_id}: {name}{where}"
    return None


def _where(a: Any, b: Any) -> str | None:
    if a == b and type(a) is type(b):
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return f"[{i}]: {x!r} then {y!r}"
        return f": {len(a)} entries then {len(b)}"
    return f": {a!r} then {b!r}"
