"""What the CUDA and bf16 tests run and against what: three prompts, 30 greedy tokens each,
compared with the fp32 CPU run of the same engine."""

import pytest
import torch

from logitsmatch.engine.request import SamplingParams

PROMPTS = ["Time travel to 2008, and go to a bar or a club", "def fib(n):", "The capital of"]
PARAMS = SamplingParams(num_tokens_to_generate=30, return_log_probs=True, termination_id=-1)
NEEDS_CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine (CPU-only run)"
)
