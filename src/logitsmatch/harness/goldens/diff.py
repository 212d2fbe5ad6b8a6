"""What a re-recorded golden changes, for the reviewer: tokens that moved, max |Δ logprob|."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from logitsmatch.harness.judge.divergence import abs_delta
from logitsmatch.harness.reports.text import counted
from logitsmatch.record import REQUEST_FIELDS, request_ids


@dataclass(frozen=True)
class RequestChange:
    """How one request differs between the old and the new golden."""

    request_id: str
    token_changes: tuple[tuple[int, int | None, int | None], ...]
    max_logprob_delta: float
    logprob_lengths: tuple[int, int] | None
    fields: tuple[str, ...]

    def describe(self) -> str:
        parts = []
        if self.token_changes:
            shown = ", ".join(f"[{p}] {o}->{n}" for p, o, n in self.token_changes[:5])
            more = len(self.token_changes) - 5
            parts.append(
                f"{len(self.token_changes)} tokens changed: {shown}"
                + (f" (+{more} more)" if more > 0 else "")
            )
        if self.logprob_lengths:
            parts.append(f"logprobs length {self.logprob_lengths[0]} -> {self.logprob_lengths[1]}")
        if self.max_logprob_delta > 0:
            parts.append(f"max |Δ logprob| {self.max_logprob_delta:.3g}")
        if self.fields:
            parts.append("changed: " + ", ".join(self.fields))
        return f"request {self.request_id!r}: " + "; ".join(parts)


@dataclass(frozen=True)
class GoldenDiff:
    """The change from the old golden to the new; ``empty`` for a no-change re-record."""

    path: str
    new_file: bool
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[RequestChange, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.new_file or self.added or self.removed or self.changed)

    @property
    def max_logprob_delta(self) -> float:
        return max((c.max_logprob_delta for c in self.changed), default=0.0)

    def format(self) -> str:
        """Human-readable lines for the record command's output."""
        if self.new_file:
            return f"{self.path}: new golden"
        if self.empty:
            return f"{self.path}: no change"
        lines = [
            f"{self.path}: {counted(len(self.changed), 'request')} changed, max |Δ logprob| "
            f"{self.max_logprob_delta:.3g}"
        ]
        lines += [f"  + request {rid!r} added" for rid in self.added]
        lines += [f"  - request {rid!r} removed" for rid in self.removed]
        lines += ["  " + change.describe() for change in self.changed]
        return "\n".join(lines)


def diff_goldens(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], path: str = "golden"
) -> GoldenDiff:
    """Compare two output JSONs request by request (``_provenance`` and run metrics ignored)."""
    if old is None:
        return GoldenDiff(path, new_file=True)
    old_ids, new_ids = request_ids(old), request_ids(new)
    changed = []
    for rid in new_ids:
        if rid in old_ids:
            change = _request_change(rid, old[rid], new[rid])
            if change is not None:
                changed.append(change)
    return GoldenDiff(
        path,
        False,
        tuple(r for r in new_ids if r not in old),
        tuple(r for r in old_ids if r not in new),
        tuple(changed),
    )


# why not the timings (latency, ttft, ...): they change on every run and would make every diff
# non-empty. Tokens and logprobs are reported with their positions instead.
_OTHER_FIELDS = tuple(
    spec.name
    for spec in REQUEST_FIELDS
    if not spec.timing and spec.name not in ("generated_tokens", "logprobs")
)


def _field_change(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    if name not in old:
        return f"{name} (added)"
    return f"{name} (removed)" if name not in new else name


def _request_change(rid: str, old: Any, new: Any) -> RequestChange | None:
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return None if old == new else RequestChange(rid, (), 0.0, None, ("entry",))
    old_tokens, new_tokens = old.get("generated_tokens", []), new.get("generated_tokens", [])
    tokens = tuple(
        (
            i,
            old_tokens[i] if i < len(old_tokens) else None,
            new_tokens[i] if i < len(new_tokens) else None,
        )
        for i in range(max(len(old_tokens), len(new_tokens)))
        if i >= len(old_tokens) or i >= len(new_tokens) or old_tokens[i] != new_tokens[i]
    )
    old_lp, new_lp = old.get("logprobs", []), new.get("logprobs", [])
    deltas = [abs_delta(a, b) for a, b in zip(old_lp, new_lp, strict=False)]
    lengths = None if len(old_lp) == len(new_lp) else (len(old_lp), len(new_lp))
    fields = tuple(_field_change(f, old, new) for f in _OTHER_FIELDS if old.get(f) != new.get(f))
    biggest = max(deltas, default=0.0)
    if not tokens and biggest == 0.0 and lengths is None and not fields:
        return None
    return RequestChange(rid, tokens, biggest, lengths, fields)
