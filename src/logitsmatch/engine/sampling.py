"""Per-request sampling from one row of logits, with the request's own generator.

Why per request and per row: a seeded request must draw the same tokens whatever else shares
its batch, so each request owns a torch.Generator and consumes it only for its own rows.
"""

from __future__ import annotations

import torch

from logitsmatch.engine.request import SamplingParams


def make_generator(params: SamplingParams) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(params.seed)


def sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
    """logits: fp32 [V] over the whole vocabulary -> a token id (temperature, top-k, top-p)."""
    scores = logits.float().cpu() / params.temperature
    if params.top_k > 1:
        kth = scores.topk(min(params.top_k, scores.numel())).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if 0.0 < params.top_p < 1.0:
        sorted_scores, order = scores.sort(descending=True)
        probs = sorted_scores.softmax(-1)
        # Drop a token when the tokens ranked above it already cover top_p (keeps the first).
        drop = probs.cumsum(-1) - probs > params.top_p
        scores[order[drop]] = float("-inf")
    probs = scores.softmax(-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())
