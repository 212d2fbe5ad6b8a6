"""Why the small ops of a batch-1 decode step are slower inside the step than alone.

A batch-1 step is a matmul that streams megabytes of weights, then a few dozen small ops on
one 576-wide row (RMSNorm, rotary, attention...), then the next matmul. This times one small
op (RMSNorm on [1, 576]) alone, and right after work that touches memory of various sizes,
with or without the OpenMP thread pool, to tell apart the causes: if the op slows down after
any multi-megabyte pass (threaded or not) and not after a matmul that fits in L2, the cause is
the evicted caches, not the thread pool or the matmul itself.
Usage: ``python benchmarks/bench_small_ops.py [--threads 2] [--repeats 300]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

HIDDEN = 576  # SmolLM2-135M


def op_after(before: Callable[[], object], op: Callable[[], object], repeats: int) -> float:
    """Median microseconds of ``op`` when it runs right after ``before``."""
    times = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        op()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def one_thread(fn: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        fn()
        torch.set_num_threads(threads)

    return run


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=300)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    row, norm_weight = torch.randn(1, HIDDEN), torch.randn(HIDDEN)
    gate_up = torch.randn(HIDDEN, 2 * 1536)  # 7 MB: SmolLM2's gate+up weight
    small = torch.randn(HIDDEN, 64)  # 147 KB: stays in L2
    big = torch.randn(1 << 20)  # 4 MB

    def rms_norm() -> torch.Tensor:
        return F.rms_norm(row, (HIDDEN,), norm_weight, 1e-5)

    before = {
        "nothing (the op alone)": lambda: None,
        "matmul on a 147 KB weight": lambda: torch.mm(row, small),
        f"matmul on a 7 MB weight, {args.threads} threads": lambda: torch.mm(row, gate_up),
        "matmul on a 7 MB weight, 1 thread": one_thread(lambda: torch.mm(row, gate_up)),
        "sum over 4 MB": lambda: big.sum(),
        "add over 4 MB": lambda: big.add(1.0),
    }
    rms_norm()
    print(f"RMSNorm on [1, {HIDDEN}], median of {args.repeats}, right after:")
    for name, fn in before.items():
        print(f"  {name:<40} {op_after(fn, rms_norm, args.repeats):7.1f} µs")


if __name__ == "__main__":
    main()
