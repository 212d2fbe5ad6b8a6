"""Timing helper shared by the benchmark scripts (run as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], calls: int = 1, batches: int = 5) -> float:
    """Seconds per call of ``fn``: the best of ``batches`` batches of ``calls`` calls each,
    after one untimed warm-up call. Why the best: on a shared machine noise only adds time."""
    fn()
    best = float("inf")
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best
