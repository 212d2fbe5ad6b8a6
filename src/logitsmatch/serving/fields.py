"""Typed readers for the fields of a decoded message; each raises ProtocolError naming the field.

msgpack gives plain Python values; these check the exact type (a bool is not an int here), the
range, and the size before anything else looks at the value.
"""

from __future__ import annotations

import math
from typing import Any

from logitsmatch.serving.errors import ProtocolError

MISSING = object()
INT64 = (-(1 << 63), (1 << 63) - 1)


class Body:
    """A message's key/value map plus the request id (if readable) to put on its errors."""

    def __init__(self, kind: str, data: dict[Any, Any]) -> None:
        self.kind, self.data = kind, data
        rid = data.get("request_id")
        self.request_id = rid if isinstance(rid, str) and len(rid) <= 128 else None

    def fail(self, field: str, value: Any, reason: str) -> ProtocolError:
        reason = f"{reason} (in a {self.kind!r} message)"
        return ProtocolError(field, value, reason, self.request_id)

    def only(self, allowed: set[str]) -> None:
        """Refuse keys this kind does not define (a typo must not silently become a default)."""
        for key in self.data:
            if key not in allowed:
                raise self.fail(str(key), self.data[key], "unknown field")

    def get(self, field: str, default: Any = MISSING) -> Any:
        if field in self.data:
            return self.data[field]
        if default is MISSING:
            raise self.fail(field, None, "required field is missing")
        return default

    def string(
        self, field: str, max_chars: int, default: Any = MISSING, nonempty: bool = False
    ) -> Any:
        value = self.get(field, default)
        if value is default and default is not MISSING:
            return value
        if not isinstance(value, str):
            raise self.fail(field, value, f"expected a string, got {type(value).__name__}")
        if len(value) > max_chars:
            raise self.fail(field, value, f"longer than {max_chars} characters")
        if nonempty and not value:
            raise self.fail(field, value, "must not be empty")
        return value

    def integer(self, field: str, lo: int, hi: int, default: Any = MISSING) -> Any:
        value = self.get(field, default)
        if value is default and default is not MISSING:
            return value
        return check_int(self, field, value, lo, hi)

    def number(self, field: str, lo: float, hi: float, default: Any = MISSING) -> Any:
        value = self.get(field, default)
        if value is default and default is not MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(field, value, f"expected a number, got {type(value).__name__}")
        if not math.isfinite(value) or not lo <= value <= hi:
            raise self.fail(field, value, f"must be finite and in [{lo}, {hi}]")
        return float(value)

    def boolean(self, field: str, default: Any = MISSING) -> Any:
        value = self.get(field, default)
        if not isinstance(value, bool):
            raise self.fail(field, value, f"expected true or false, got {type(value).__name__}")
        return value

    def int_list(self, field: str, max_len: int, lo: int, hi: int, default: Any = MISSING) -> Any:
        value = self.get(field, default)
        if value is default and default is not MISSING:
            return value
        if not isinstance(value, list):
            raise self.fail(field, value, f"expected a list of ints, got {type(value).__name__}")
        if len(value) > max_len:
            raise self.fail(field, len(value), f"more than {max_len} items")
        return tuple(check_int(self, f"{field}[{i}]", v, lo, hi) for i, v in enumerate(value))

    def float_list(self, field: str, max_len: int, default: Any = MISSING) -> Any:
        """Floats may be NaN or infinite: a reply reports what the engine computed, verbatim."""
        value = self.get(field, default)
        if value is None or (value is default and default is not MISSING):
            return value
        if not isinstance(value, list):
            raise self.fail(field, value, f"expected a list of numbers, got {type(value).__name__}")
        if len(value) > max_len:
            raise self.fail(field, len(value), f"more than {max_len} items")
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.fail(f"{field}[{i}]", v, "expected a number")
        return [float(v) for v in value]


def check_int(body: Body, field: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise body.fail(field, value, f"expected an int, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise body.fail(field, value, f"must be in [{lo}, {hi}]")
    return value
