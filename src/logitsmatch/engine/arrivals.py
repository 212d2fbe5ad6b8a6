"""When each request of a run arrives: all at once, so many per engine step, or a seeded Poisson
process in wall-clock time (Megatron-LM's --incoming-requests-per-step and
--incoming-requests-per-sec). Plain Python, no torch.

The Poisson schedule is a pure function of (rate, seed, count) and is written to the run log,
so a run can be replayed with the same arrivals. In ``--batch-invariant`` mode a request's
numbers do not depend on what shares its steps, so no arrival pattern changes them (tested).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Arrivals:
    """``per_step``: that many requests join before each engine step; ``per_sec`` > 0: request
    i arrives at the i-th event of a Poisson process of that rate (seeded by ``seed``); neither
    (``per_sec`` <= 0, Megatron's default -1): every request at once."""

    per_step: int | None = None
    per_sec: float = -1.0
    seed: int = 0

    def __post_init__(self) -> None:
        step = self.per_step
        if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 1):
            raise ValueError(f"--incoming-requests-per-step must be an int >= 1, got {step!r}")
        rate = self.per_sec
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate):
            raise ValueError(f"--incoming-requests-per-sec must be a finite number, got {rate!r}")
        if step is not None and rate > 0:
            raise ValueError(
                "--incoming-requests-per-step and --incoming-requests-per-sec > 0 exclude each "
                "other: give one"
            )

    @property
    def timed(self) -> bool:
        return self.per_sec > 0

    def times(self, count: int) -> list[float]:
        """Arrival time of each of ``count`` requests, seconds after the run starts."""
        if not self.timed:
            return [0.0] * count
        rng = random.Random(self.seed)
        out, now = [], 0.0
        for _ in range(count):
            now += rng.expovariate(self.per_sec)
            out.append(now)
        return out

    def describe(self, count: int) -> str:
        """The schedule, for the run log."""
        if self.per_step is not None:
            return f"{self.per_step} per engine step ({count} requests)"
        if not self.timed:
            return f"all {count} at once"
        shown = " ".join(f"{t:.3f}" for t in self.times(count))
        return f"Poisson {self.per_sec:g}/s, seed {self.seed}: request i at [{shown}] s"
