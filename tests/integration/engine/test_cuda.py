"""fp32 on CUDA vs fp32 on the CPU (needs a GPU; skipped with the reason elsewhere).

With ``test_bf16.py`` (whose cuda case also needs a GPU) this is the prepared device check:
``python -m pytest tests/integration/engine/test_cuda.py tests/integration/engine/test_bf16.py -s``
prints the measured differences.
"""

from device_runs import NEEDS_CUDA, PARAMS, PROMPTS

from logitsmatch.engine.loader import build_stage

pytestmark = NEEDS_CUDA


def test_cuda_fp32_matches_cpu_within_1e_3(smollm2, fp32_cpu_records, make_engine):
    cpu = fp32_cpu_records
    gpu = make_engine(build_stage(smollm2, device="cuda")).generate(PROMPTS, PARAMS)
    for a, b in zip(cpu, gpu, strict=True):
        assert a.generated_tokens == b.generated_tokens
        worst = max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True))
        print(
            f"cuda fp32 vs cpu fp32, {a.input_prompt!r}: tokens equal, max |dlogprob| {worst:.3e}"
        )
        assert worst <= 1e-3
