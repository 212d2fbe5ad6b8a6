"""Exceptions of the serving layer; each message names what failed and why."""

from __future__ import annotations

from typing import Any


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, so an error never echoes a huge payload."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


class ProtocolError(ValueError):
    """A frame that is not a valid message: names the field, the offending value and the rule.

    ``request_id`` is set when the frame carried a readable request id, so the error reply can
    name the request it refuses.
    """

    def __init__(self, field: str, value: Any, reason: str, request_id: str | None = None) -> None:
        # why short(field) too: an unknown key is the peer's to choose, 2 million characters
        # long if it likes, and this text goes into a reply and the log
        super().__init__(f"field {short(field)} = {short(value)}: {reason}")
        self.field, self.value, self.reason, self.request_id = field, value, reason, request_id


class RequestFailed(RuntimeError):
    """The coordinator or a replica answered a request with an error reply."""

    def __init__(self, request_id: str, code: str, message: str) -> None:
        super().__init__(f"request {request_id!r} failed ({code}): {message}")
        self.request_id, self.code, self.message = request_id, code, message


class RequestTimeout(TimeoutError):
    """A request got no reply within its deadline."""

    def __init__(self, request_id: str, deadline_s: float) -> None:
        super().__init__(f"request {request_id!r}: no reply within its deadline of {deadline_s} s")
        self.request_id, self.deadline_s = request_id, deadline_s


class CoordinatorLost(ConnectionError):
    """The coordinator stopped answering (killed, unreachable, or restarted without us)."""
