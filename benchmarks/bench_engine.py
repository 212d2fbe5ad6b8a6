"""This engine vs HF transformers ``generate`` on the same SmolLM2-135M weights (fp32), one run.

Reports prefill tok/s, decode tok/s at batch 1 and with 32 concurrent requests, and time to
ready (import + weights + tokenizer, in a fresh process), as ratios against HF measured in the
same run on the same threads. Usage: ``python benchmarks/bench_engine.py [--threads 2]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings

import torch

PROMPT = (
    "Time travel to 2008, and go to a bar or a club or one of the myriad disco-basements on the "
    "Lower East Side that does not quite know which of those it is."
)


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def ours(batch_invariant: bool, new_tokens: int) -> dict[str, float]:
    from logitsmatch.engine.config import CacheConfig, SchedulerConfig
    from logitsmatch.engine.engine import LLMEngine
    from logitsmatch.engine.loader import build_stage, resolve
    from logitsmatch.engine.request import SamplingParams

    spec = resolve("smollm2-135m")
    tokenizer = spec.tokenizer()
    # One engine for all runs: its KV cache is allocated (and zeroed) once, as in a server.
    engine = LLMEngine(
        build_stage(spec, batch_invariant=batch_invariant),
        tokenizer,
        cache=CacheConfig(block_size=16, num_blocks=256),
        scheduler=SchedulerConfig(max_num_batched_tokens=4096),
    )

    def run(prompts: list[str], n: int) -> None:
        engine.generate(prompts, SamplingParams(num_tokens_to_generate=n, termination_id=-1))

    return measure(run, len(tokenizer.encode(PROMPT)), new_tokens)


def hf(new_tokens: int) -> dict[str, float]:
    import transformers

    from logitsmatch.engine.loader import smollm2_gguf_path

    warnings.filterwarnings("ignore")
    transformers.utils.logging.set_verbosity_error()
    path = smollm2_gguf_path()
    tok = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = transformers.LlamaForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    ).eval()

    def run(prompts: list[str], n: int) -> None:
        ids = tok(prompts, return_tensors="pt")
        with torch.no_grad():
            model.generate(
                **ids,
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                pad_token_id=tok.eos_token_id,
            )

    prompt_len = len(tok.encode(PROMPT))
    return measure(run, prompt_len, new_tokens) | {"prompt": prompt_len}


def measure(run, prompt_len: int, n: int) -> dict[str, float]:
    """Decode rate = extra tokens / extra time between a 1-token and an n-token generate."""
    out = {}
    for batch in (1, 32):
        prompts = [PROMPT] * batch
        run(prompts, 2)  # warm-up
        t1 = best_of(lambda p=prompts: run(p, 1))
        tn = best_of(lambda p=prompts: run(p, n), repeats=2)
        out[f"prefill_tok_s_b{batch}"] = batch * prompt_len / t1
        out[f"decode_tok_s_b{batch}"] = batch * (n - 1) / (tn - t1)
    return out


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
    p.add_argument("--new-tokens", type=int, default=17)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results = {
        "hf": hf(args.new_tokens),
        "ours": ours(False, args.new_tokens),
        "ours --batch-invariant": ours(True, args.new_tokens),
    }
    ready = {"hf": time_to_ready(READY_HF), "ours": time_to_ready(READY_OURS)}
    base = results["hf"]
    print(f"SmolLM2-135M fp32, {args.threads} threads, prompt {base['prompt']} tokens")
    print(f"{'metric':<20}{'HF':>10}" + "".join(f"{k:>26}" for k in results if k != "hf"))
    for metric in ("prefill_tok_s_b1", "decode_tok_s_b1", "prefill_tok_s_b32", "decode_tok_s_b32"):
        row = f"{metric:<20}{base[metric]:>10.1f}"
        for name, values in results.items():
            if name != "hf":
                row += f"{values[metric]:>14.1f} ({values[metric] / base[metric]:4.2f}x HF)"
        print(row)
    print(
        f"{'time to ready (s)':<20}{ready['hf']:>10.2f}{ready['ours']:>14.2f} "
        f"({ready['hf'] / ready['ours']:4.1f}x faster)"
    )


if __name__ == "__main__":
    main()
