"""What every rank of a replica does with one iteration's events, identically on each rank.

Events are plain lists (so they can cross ranks as msgpack):
``["add", id, prompt, sampling map, stream]``, ``["abort", id]``, ``["pause"]``,
``["unpause"]``, ``["stop"]``, ``["shutdown"]``, ``["lost", message]``.
The engine is deterministic given the same events in the same order, so ranks that apply the
same list and then step stay in lockstep without exchanging anything else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from logitsmatch.engine.request import RequestError, SamplingParams
from logitsmatch.record import RequestRecord

log = logging.getLogger(__name__)
Event = list[Any]


@dataclass
class Outcome:
    """What the entry rank must send back after applying events."""

    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (id, code, message)
    records: list[RequestRecord] = field(default_factory=list)  # aborted requests
    exit: str | None = None  # "stop" | "shutdown" | "lost"
    lost: str | None = None  # why the coordinator is considered gone


class ReplicaState:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.paused = False
        self.active: set[str] = set()
        self.streams: dict[str, int] = {}  # streamed id -> tokens already sent
        self.can_stream = callable(getattr(engine, "progress", None))

    def apply(self, events: list[Event]) -> Outcome:
        out = Outcome()
        for event in events:
            kind = event[0]
            if kind == "add":
                self._add(event, out)
            elif kind == "abort":
                self._abort(event[1], out)
            elif kind in ("pause", "unpause"):
                self.paused = kind == "pause"
            elif kind in ("stop", "shutdown", "lost"):
                for rid in sorted(self.active):
                    self._abort(rid, out)
                out.exit = kind
                out.lost = event[1] if kind == "lost" else None
                break
        return out

    def should_step(self) -> bool:
        return not self.paused and self.engine.has_unfinished()

    def step(self) -> list[RequestRecord]:
        records = self.engine.step()
        for record in records:
            self.active.discard(record.request_id)
            self.streams.pop(record.request_id, None)
        return records

    def forgotten_keys(self) -> list[bytes]:
        """Prefix-cache keys the engine forgot since the last call ([] for an engine without
        a prefix cache)."""
        drain = getattr(self.engine, "drain_forgotten_prefix_keys", None)
        return drain() if callable(drain) else []

    def partials(self) -> list[tuple[str, int, list[int]]]:
        """(id, offset, new tokens) for each streamed request that produced tokens."""
        out = []
        for rid, sent in self.streams.items():
            tokens = self.engine.progress(rid) or []
            if len(tokens) > sent:
                out.append((rid, sent, tokens[sent:]))
                self.streams[rid] = len(tokens)
        return out

    def _add(self, event: Event, out: Outcome) -> None:
        _, rid, prompt, sampling, stream = event
        if stream and not self.can_stream:
            out.errors.append(
                (
                    rid,
                    "cannot_stream",
                    "this replica's engine has no progress() so it cannot stream partial replies",
                )
            )
            return
        params = SamplingParams(**{**sampling, "stop_strings": tuple(sampling["stop_strings"])})
        try:
            self.engine.add_request(prompt, params, request_id=rid)
        except RequestError as e:
            out.errors.append((rid, "rejected", str(e)))
            return
        except (
            Exception
        ) as e:  # why: input the engine chokes on fails that request, not the replica
            log.exception("request %r: the engine failed to add it", rid)
            out.errors.append((rid, "rejected", f"the engine failed to add it: {e!r}"))
            return
        self.active.add(rid)
        if stream:
            self.streams[rid] = 0

    def _abort(self, rid: str, out: Outcome) -> None:
        record = self.engine.abort(rid)
        self.active.discard(rid)
        self.streams.pop(rid, None)
        if record is not None:
            out.records.append(record)
