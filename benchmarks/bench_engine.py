"""This engine vs HF transformers ``generate`` on the same SmolLM2-135M weights (fp32), one run.

Reports prefill tok/s and decode tok/s at batch 1 and with 32 concurrent requests, and time to
ready (import + weights + tokenizer, in a fresh process), as ratios against HF measured in the
same run on the same threads.

How: every decode step is timed on both sides (HF through a logits processor, which generate
calls once per step; ours around ``LLMEngine.step``), and a rate is the batch size over the
median step. The engines take turns, round after round, and each rate is the median over
rounds, so a burst of load from a neighbour on a shared machine lands on both sides and moves
no ratio much (timing the whole ``generate`` swung HF's batch-32 rate from 196 to 306 tok/s
between two runs here).

Also two ceilings measured in the same run, which bound any fp32 engine on this machine:
batch-1 decode cannot beat streaming the weights once from memory per token, and batch-32
decode cannot beat its matmuls alone. And the split of our decode step: the time in torch.mm
(torch.profiler) against the step that each speed target asks for.
Usage: ``python benchmarks/bench_engine.py [--threads 2] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable

import torch

from logitsmatch.engine.engine import LLMEngine
from timing import best_of

PROMPT = (
    "Time travel to 2008, and go to a bar or a club or one of the myriad disco-basements on the "
    "Lower East Side that does not quite know which of those it is."
)
BATCHES = (1, 32)
TARGETS = (1.5, 2.0)  # issue 2's speed targets, decode at batch 1 and at 32 requests
# One run: (seconds of the prefill step, seconds of each decode step).
Timed = tuple[float, list[float]]


def make_engine(batch_invariant: bool) -> LLMEngine:
    """One engine for all runs: its KV cache is allocated (and zeroed) once, as in a server."""
    from logitsmatch.engine.config import CacheConfig, SchedulerConfig
    from logitsmatch.engine.loader import build_stage, resolve

    spec = resolve("smollm2-135m")
    return LLMEngine(
        build_stage(spec, batch_invariant=batch_invariant),
        spec.tokenizer(),
        cache=CacheConfig(block_size=16, num_blocks=256),
        scheduler=SchedulerConfig(max_num_batched_tokens=4096),
    )


def ours(engine: LLMEngine) -> Callable[[int, int], Timed]:
    from logitsmatch.engine.request import SamplingParams

    def run(batch: int, new_tokens: int) -> Timed:
        params = SamplingParams(num_tokens_to_generate=new_tokens, termination_id=-1)
        for _ in range(batch):
            engine.add_request(PROMPT, params)
        steps = []
        while engine.has_unfinished():  # step 1: every prompt in one prefill step
            start = time.perf_counter()
            engine.step()
            steps.append(time.perf_counter() - start)
        return steps[0], steps[1:]

    return run


def hf() -> Callable[[int, int], Timed]:
    import transformers

    from logitsmatch.engine.loader import smollm2_gguf_path

    warnings.filterwarnings("ignore")
    transformers.utils.logging.set_verbosity_error()
    path = smollm2_gguf_path()
    tok = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = transformers.LlamaForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    ).eval()

    class Clock(transformers.LogitsProcessor):
        """generate calls this once per step, right after the step's forward pass."""

        def __init__(self) -> None:
            self.stamps: list[float] = []

        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            self.stamps.append(time.perf_counter())
            return scores

    def run(batch: int, new_tokens: int) -> Timed:
        ids = tok([PROMPT] * batch, return_tensors="pt")
        clock = Clock()
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(
                **ids,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=tok.eos_token_id,
                logits_processor=transformers.LogitsProcessorList([clock]),
            )
        prefill = clock.stamps[0] - start
        return prefill, [b - a for a, b in itertools.pairwise(clock.stamps)]

    return run


def measure(
    engines: dict[str, Callable[[int, int], Timed]], rounds: int, new_tokens: int, prompt_len: int
) -> dict[str, dict[str, float]]:
    """{engine: {metric: tok/s}}, each the median over rounds; engines take turns each round."""
    rates: dict[str, dict[str, list[float]]] = {name: {} for name in engines}
    for run in engines.values():
        run(1, 2)  # warm-up
    for _ in range(rounds):
        for name, run in engines.items():
            for batch in BATCHES:
                prefill, decode = run(batch, new_tokens)
                out = rates[name]
                out.setdefault(f"prefill_tok_s_b{batch}", []).append(batch * prompt_len / prefill)
                rate = batch / statistics.median(decode)
                out.setdefault(f"decode_tok_s_b{batch}", []).append(rate)
    medians = {
        name: {metric: statistics.median(values) for metric, values in per.items()}
        for name, per in rates.items()
    }
    return medians


def matmul_ms_per_step(engine: LLMEngine, batch: int, steps: int = 8) -> float:
    """Milliseconds of torch.mm (self time, torch.profiler) in one decode step of ``engine``
    at ``batch`` requests: the part of the step that no reordering of the other ops removes."""
    from torch.profiler import ProfilerActivity, profile

    from logitsmatch.engine.request import SamplingParams

    params = SamplingParams(num_tokens_to_generate=steps + 2, termination_id=-1)
    for _ in range(batch):
        engine.add_request(PROMPT, params)
    engine.step()  # prefill
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            engine.step()
    while engine.has_unfinished():
        engine.step()
    mm_us = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key == "aten::mm")
    return mm_us / 1e3 / steps


def ceilings(engine: LLMEngine, batch: int = 32) -> dict[str, float]:
    """Upper bounds on decode tok/s, from the model's own weight matrices.

    batch 1: every weight byte the step multiplies with, streamed once (a sum over a tensor of
    that size, which touches each byte as a gemv does). batch 32: torch.mm on each weight matrix
    at 32 rows, summed over the model, with nothing else in the step (weights cache-warm).
    """
    model = engine.model
    weights = [w for name, w in model.named_parameters() if w.dim() == 2 and name != "embed"]
    total_bytes = sum(w.numel() * w.element_size() for w in weights)
    stream = torch.empty(total_bytes // 4, dtype=torch.float32).normal_()
    read = best_of(stream.sum)
    rows = {w.shape[0]: torch.randn(batch, w.shape[0]) for w in weights}  # [32, K] per K

    def all_matmuls() -> None:
        for w in weights:
            torch.mm(rows[w.shape[0]], w)

    matmuls = best_of(all_matmuls)
    return {
        "weights_mb": total_bytes / 1e6,
        "bandwidth_gb_s": total_bytes / read / 1e9,
        "decode_tok_s_b1": 1 / read,
        f"decode_tok_s_b{batch}": batch / matmuls,
    }


def time_to_ready(code: str) -> float:
    """Seconds for a fresh interpreter to import, load weights and tokenizer (best of 3)."""
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        runs.append(time.perf_counter() - start)
    return min(runs)


READY_OURS = (
    "from logitsmatch.engine.loader import resolve, build_stage\n"
    "s = resolve('smollm2-135m'); build_stage(s); s.tokenizer()"
)
READY_HF = (
    "import torch, transformers\n"
    "from logitsmatch.engine.loader import smollm2_gguf_path\n"
    "p = smollm2_gguf_path()\n"
    "transformers.AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name)\n"
    "transformers.LlamaForCausalLM.from_pretrained(p.parent, gguf_file=p.name, "
    "dtype=torch.float32)"
)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--new-tokens", type=int, default=33)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from logitsmatch.engine.loader import resolve

    prompt_len = len(resolve("smollm2-135m").tokenizer().encode(PROMPT))  # = HF's (test_hf_parity)
    fast = make_engine(batch_invariant=False)
    engines = {"hf": hf(), "ours": ours(fast), "ours --batch-invariant": ours(make_engine(True))}
    results = measure(engines, args.rounds, args.new_tokens, prompt_len)
    ready = {"hf": time_to_ready(READY_HF), "ours": time_to_ready(READY_OURS)}
    ceiling = ceilings(fast)
    matmul_ms = {batch: matmul_ms_per_step(fast, batch) for batch in BATCHES}
    base = results["hf"]
    print(
        f"SmolLM2-135M fp32, {args.threads} threads, prompt {prompt_len} tokens, "
        f"{args.new_tokens} new tokens, median of {args.rounds} rounds"
    )
    print(f"{'metric':<20}{'HF':>10}" + "".join(f"{k:>26}" for k in results if k != "hf"))
    for metric in base:
        row = f"{metric:<20}{base[metric]:>10.1f}"
        for name, values in results.items():
            if name != "hf":
                row += f"{values[metric]:>14.1f} ({values[metric] / base[metric]:4.2f}x HF)"
        print(row)
    print(
        f"{'time to ready (s)':<20}{ready['hf']:>10.2f}{ready['ours']:>14.2f} "
        f"({ready['hf'] / ready['ours']:4.1f}x faster)"
    )
    print(
        f"ceilings: batch 1 <= {ceiling['decode_tok_s_b1']:.1f} tok/s "
        f"({ceiling['decode_tok_s_b1'] / base['decode_tok_s_b1']:.2f}x HF; "
        f"{ceiling['weights_mb']:.0f} MB of weights a token at "
        f"{ceiling['bandwidth_gb_s']:.1f} GB/s), batch 32 <= "
        f"{ceiling['decode_tok_s_b32']:.1f} tok/s "
        f"({ceiling['decode_tok_s_b32'] / base['decode_tok_s_b32']:.2f}x HF; the matmuls alone)"
    )
    for batch, target in zip(BATCHES, TARGETS, strict=True):
        hf_step = batch / base[f"decode_tok_s_b{batch}"] * 1e3
        our_step = batch / results["ours"][f"decode_tok_s_b{batch}"] * 1e3
        print(
            f"decode step at batch {batch}: HF {hf_step:.1f} ms, ours {our_step:.1f} ms, of which "
            f"torch.mm {matmul_ms[batch]:.1f} ms; {target}x HF needs <= {hf_step / target:.1f} ms"
        )


if __name__ == "__main__":
    main()
