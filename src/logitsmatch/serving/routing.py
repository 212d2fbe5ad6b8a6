"""Which replica gets the next request: a policy is any callable loads -> index.

The coordinator passes the live replicas in registration order as ReplicaLoad tuples; the
policy returns the index of the chosen one. Policies may keep state (round-robin does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple


class ReplicaLoad(NamedTuple):
    name: str
    outstanding: int


Policy = Callable[[Sequence[ReplicaLoad]], int]


class LeastOutstanding:
    """Fewest requests in flight; ties rotate, so equal replicas share a burst evenly."""

    def __init__(self) -> None:
        self._turn = 0

    def __call__(self, loads: Sequence[ReplicaLoad]) -> int:
        least = min(load.outstanding for load in loads)
        tied = [i for i, load in enumerate(loads) if load.outstanding == least]
        self._turn += 1
        return tied[self._turn % len(tied)]


class RoundRobin:
    """Each replica in turn, whatever its load."""

    def __init__(self) -> None:
        self._turn = -1

    def __call__(self, loads: Sequence[ReplicaLoad]) -> int:
        self._turn += 1
        return self._turn % len(loads)


POLICIES: dict[str, Callable[[], Policy]] = {
    "least_outstanding": LeastOutstanding,
    "round_robin": RoundRobin,
}


def make_policy(policy: str | Policy) -> Policy:
    """A policy from its name (see POLICIES) or a callable used as is."""
    if callable(policy):
        return policy
    if policy not in POLICIES:
        raise ValueError(f"routing policy {policy!r} is unknown; use one of {sorted(POLICIES)}")
    return POLICIES[policy]()
