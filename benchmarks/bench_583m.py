"""Decode speed of the gpt-583m stand-in (Megatron's 583m shape, what the corpus folders run
here) at 1 and 32 concurrent requests, fast and --batch-invariant, in one run.

A rate is the batch size over the median decode step (``LLMEngine.step`` timed, prefill
excluded); batch-invariant is reported as a ratio against fast mode measured in the same run,
modes taking turns round after round so machine noise lands on both.

    python benchmarks/bench_583m.py [--dtype bfloat16] [--rounds 2] [--steps 8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from logitsmatch.engine.build import build_engine
from logitsmatch.engine.config import SchedulerConfig
from logitsmatch.engine.options import EngineOptions
from logitsmatch.engine.request import SamplingParams

PROMPT = "Time travel to 2008, and go to a bar or a club or one of the myriad disco-basements"


def decode_rate(engine, batch: int, steps: int) -> float:
    """Tokens per second of decode steps with ``batch`` requests in flight."""
    params = SamplingParams(num_tokens_to_generate=steps + 2, termination_id=-1)
    for _ in range(batch):
        engine.add_request(PROMPT, params)
    engine.step()  # the prefill of all of them
    times = []
    while engine.has_unfinished():
        start = time.perf_counter()
        engine.step()
        times.append(time.perf_counter() - start)
    engine.reset()
    return batch / statistics.median(times[:steps])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=8)
    args = p.parse_args()
    engines = {
        mode: build_engine(
            EngineOptions(
                model="gpt-583m",
                dtype=args.dtype,
                device="cpu",
                batch_invariant=mode == "batch-invariant",
                kv_cache_tokens=4096,
                scheduler=SchedulerConfig(max_num_seqs=32, max_num_batched_tokens=4096),
            )
        )
        for mode in ("fast", "batch-invariant")
    }
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for batch in (1, 32):
            for mode, engine in engines.items():
                rates.setdefault((mode, batch), []).append(decode_rate(engine, batch, args.steps))
    print(
        f"gpt-583m stand-in decode, {args.dtype}, {torch.get_num_threads()} threads, "
        f"median of {args.rounds} rounds:"
    )
    for batch in (1, 32):
        fast = statistics.median(rates[("fast", batch)])
        slow = statistics.median(rates[("batch-invariant", batch)])
        print(
            f"  {batch:2d} requests: fast {fast:7.1f} tok/s, batch-invariant {slow:7.1f} tok/s "
            f"({slow / fast:.2f}x of fast)"
        )


if __name__ == "__main__":
    main()
