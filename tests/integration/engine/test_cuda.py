"""CUDA path vs the CPU run (needs a GPU; skipped with the reason elsewhere).

Also the one prepared device check: ``python -m pytest tests/integration/engine/test_cuda.py -s``
prints the bf16 logprob differences.
"""

import pytest
import torch

from logitsmatch.engine.engine import LLMEngine
from logitsmatch.engine.loader import build_stage
from logitsmatch.engine.request import SamplingParams

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine (CPU-only run)"
)
PROMPTS = ["Time travel to 2008, and go to a bar or a club", "def fib(n):", "The capital of"]
PARAMS = SamplingParams(num_tokens_to_generate=30, return_log_probs=True, termination_id=-1)


def run(spec, device: str, dtype: torch.dtype):
    engine = LLMEngine(build_stage(spec, dtype=dtype, device=device), spec.tokenizer())
    return engine.generate(PROMPTS, PARAMS)


def test_cuda_fp32_matches_cpu_within_1e_3(smollm2):
    cpu = run(smollm2, "cpu", torch.float32)
    gpu = run(smollm2, "cuda", torch.float32)
    for a, b in zip(cpu, gpu, strict=True):
        assert a.generated_tokens == b.generated_tokens
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) <= 1e-3


def test_cuda_bf16_reports_its_distance_from_cpu(smollm2):
    cpu = run(smollm2, "cpu", torch.float32)
    bf16 = run(smollm2, "cuda", torch.bfloat16)
    for a, b in zip(cpu, bf16, strict=True):
        same = sum(x == y for x, y in zip(a.generated_tokens, b.generated_tokens, strict=True))
        n = min(len(a.logprobs), len(b.logprobs))
        worst = max(abs(x - y) for x, y in zip(a.logprobs[:n], b.logprobs[:n], strict=True))
        print(
            f"bf16 vs cpu fp32: {same}/{len(a.generated_tokens)} tokens equal, "
            f"max |dlogprob| {worst:.3e}"
        )
        assert not any(v != v for v in b.logprobs)  # no NaN
