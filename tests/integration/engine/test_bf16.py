"""bfloat16, the GPU platforms' dtype, against the fp32 CPU run: on the CPU and on CUDA.

Why on the CPU too: the GPU check runs only where a GPU is lent, and a dtype mismatch in any
layer (an fp32 activation meeting a bf16 weight) fails the same way on either device.
"""

import math

import pytest
import torch
from device_runs import NEEDS_CUDA, PARAMS, PROMPTS

from logitsmatch.engine.loader import build_stage

# bf16 keeps 8 significant bits: logits of magnitude 16-32 are rounded to steps of 0.125, so
# rounding the two logits a logprob depends on most can move it by up to ~0.125 on its own.
# Measured against fp32 before the first differing token, on the CPU: 0.103-0.112 with
# --batch-invariant (the dgx_h100 cases' mode; float64 accumulation, so any CPU gives this).
# The fast mode runs the CPU's own bf16 GEMM, which depends on the ISA: 0.057-0.147 on a CPU
# without avx512_bf16, 0.119-0.343 on one with it (oneDNN's bf16 dot-product kernels), so its
# bound is four bf16 steps. A dtype bug (an fp32 activation meeting a bf16 weight) fails outright.
BF16_LOGPROB_BOUND = {True: 0.25, False: 0.5}  # by batch_invariant


@pytest.mark.parametrize("batch_invariant", [False, True], ids=["fast", "batch_invariant"])
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=NEEDS_CUDA)])
def test_bf16_follows_fp32_until_tokens_part(
    device, batch_invariant, smollm2, fp32_cpu_records, make_engine
):
    fp32 = fp32_cpu_records
    bf16_model = build_stage(
        smollm2, dtype=torch.bfloat16, device=device, batch_invariant=batch_invariant
    )
    bf16 = make_engine(bf16_model).generate(PROMPTS, PARAMS)
    for a, b in zip(fp32, bf16, strict=True):
        pairs = list(zip(a.generated_tokens, b.generated_tokens, strict=True))
        agree = next((i for i, (x, y) in enumerate(pairs) if x != y), len(pairs))
        # prompt logprobs (positions 1..n-1) and the generated ones up to the first difference
        compared = len(a.logprobs) - len(a.generated_tokens) + agree
        worst = max(
            abs(x - y) for x, y in zip(a.logprobs[:compared], b.logprobs[:compared], strict=True)
        )
        print(
            f"bf16 on {device} (batch_invariant={batch_invariant}) vs fp32 on cpu, "
            f"{a.input_prompt!r}: {agree}/{len(pairs)} tokens agree, "
            f"max |dlogprob| before the first difference {worst:.3e}"
        )
        assert agree >= 1, f"{a.input_prompt!r}: bf16's first token differs from fp32's"
        assert all(math.isfinite(v) for v in b.logprobs)
        bound = BF16_LOGPROB_BOUND[batch_invariant]
        assert worst <= bound, f"{a.input_prompt!r}: max |dlogprob| {worst:.3f}"
