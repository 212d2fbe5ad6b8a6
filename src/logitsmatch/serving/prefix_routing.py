"""Prefix-aware routing: send a request where its prompt's KV blocks are likely cached.

Megatron-LM's coordinator policies (``--inference-dynamic-batching-prefix-caching-coordinator-
policy``): ``longest_prefix`` scores each replica by how deep into the prompt's block chain it
holds a cached block, ``first_prefix_block`` by whether it holds the first block, and both trade
that against load::

    score = alpha * match + (1 - alpha) * free_slots / max_requests

with ties broken by the most recent assignment, then by the lowest index. ``load_balanced``
(the default) is plain least-outstanding routing (``routing.py``).

What a replica holds is learnt from two sources. The coordinator's own assignments: a request's
blocks are cached on the replica it went to once that replica prefills it (why not only from
the replicas: a burst of requests with one prefix is routed before any replica has prefilled
anything, so their reports would come too late to keep the burst together). And the replicas'
reports of the keys they forgot (evicted, or released under ``ref_zero``): those are dropped,
so a replica is not sent requests for blocks it no longer has (``forget``). Plain Python.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

from logitsmatch.serving.routing import ReplicaLoad

PREFIX_POLICIES = ("longest_prefix", "first_prefix_block")
DEFAULT_ALPHA = 0.5
DEFAULT_MAX_KEYS = 1 << 20  # why a bound: the table must not grow without end (about 100 MB)

PromptKeys = Callable[[str | Sequence[int]], list[bytes]]


class PrefixAffinity:
    """A stateful routing policy: ``(loads, keys) -> index`` and remembers the assignment."""

    def __init__(
        self,
        policy: str,
        max_requests: int,
        alpha: float = DEFAULT_ALPHA,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if policy not in PREFIX_POLICIES:
            raise ValueError(
                f"prefix routing policy {policy!r} is unknown; use one of {list(PREFIX_POLICIES)}"
            )
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"prefix routing alpha must be in [0, 1], got {alpha!r}")
        if max_requests < 1:
            raise ValueError(f"prefix routing max_requests must be >= 1, got {max_requests!r}")
        self.policy, self.alpha, self.max_requests = policy, alpha, max_requests
        self._max_keys = max_keys
        # block key -> {replica name: when it was last sent a request holding it}
        self._holders: OrderedDict[bytes, dict[str, int]] = OrderedDict()
        self._clock = 0

    def __call__(self, loads: Sequence[ReplicaLoad], keys: Sequence[bytes]) -> int:
        if self.policy == "first_prefix_block":
            keys = keys[:1]
        match, recency = self._match(loads, keys)
        free = [max(0, self.max_requests - load.outstanding) for load in loads]
        scores = [
            self.alpha * m + (1.0 - self.alpha) * f / self.max_requests
            for m, f in zip(match, free, strict=True)
        ]
        best = max(range(len(loads)), key=lambda i: (scores[i], recency[i], -i))
        self._remember(loads[best].name, keys)
        return best

    def _match(
        self, loads: Sequence[ReplicaLoad], keys: Sequence[bytes]
    ) -> tuple[list[float], list[int]]:
        """Per replica: the depth of the deepest block it holds / the chain's length (only the
        replicas at the deepest depth anyone holds score), and when it got that block."""
        none = ([0.0] * len(loads), [0] * len(loads))
        for depth in range(len(keys) - 1, -1, -1):
            holders = self._holders.get(keys[depth], {})
            if any(load.name in holders for load in loads):
                share = (depth + 1) / len(keys)
                return (
                    [share if load.name in holders else 0.0 for load in loads],
                    [holders.get(load.name, 0) for load in loads],
                )
        return none

    def forget(self, name: str, keys: Sequence[bytes]) -> None:
        """Replica ``name`` no longer holds ``keys``."""
        for key in keys:
            holders = self._holders.get(key)
            if holders is not None and holders.pop(name, None) is not None and not holders:
                del self._holders[key]

    def holds(self, name: str, key: bytes) -> bool:
        """Whether routing counts on replica ``name`` holding ``key``."""
        return name in self._holders.get(key, {})

    def _remember(self, name: str, keys: Sequence[bytes]) -> None:
        self._clock += 1
        for key in keys:
            self._holders.setdefault(key, {})[name] = self._clock
            self._holders.move_to_end(key)
        while len(self._holders) > self._max_keys:
            self._holders.popitem(last=False)
