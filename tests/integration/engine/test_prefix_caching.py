"""Prefix caching on the real SmolLM2 weights: what it saves, and that it changes no number.

In batch-invariant mode a request's K/V and logits do not depend on its batch, so a request
served from cached blocks must give bit-identical tokens and logprobs (prompt ones included,
which come from the cache for the positions it skipped) to the same run with caching off.
"""

import pytest

from logitsmatch.engine.config import CacheConfig, SchedulerConfig
from logitsmatch.engine.request import SamplingParams

SYSTEM = (
    "<|im_start|>system\nYou are a careful assistant. Answer in one short sentence, "
    "name your sources, and say so when you do not know. Never guess a number; when a "
    "question has two readings, answer the more common one and say which.<|im_end|>\n"
    "<|im_start|>user\n"
)
QUESTIONS = ["What is the capital of France?", "Why is the sky blue?", "Name a prime."]
# Shared system prompt, a repeat, and a prompt that parts from the others inside a block.
PROMPTS = [SYSTEM + q for q in QUESTIONS] + [SYSTEM + QUESTIONS[0], SYSTEM[:40] + "Hello"]
PARAMS = SamplingParams(num_tokens_to_generate=6, return_log_probs=True, termination_id=-1)
BS = 16


def caching(eviction: str = "ref_zero", **limits) -> SchedulerConfig:
    return SchedulerConfig(prefix_caching=True, prefix_eviction=eviction, **limits)  # type: ignore[arg-type]


def test_a_repeated_prompt_prefills_only_past_its_cached_blocks(invariant_model, make_engine):
    prompt = PROMPTS[0]
    off = make_engine(invariant_model)
    on = make_engine(invariant_model, scheduler=caching())
    n = len(off.tokenizer.encode(prompt))
    plain, cached = off.generate([prompt, prompt], PARAMS), on.generate([prompt, prompt], PARAMS)
    skip = (n - 1) // BS * BS  # every full block but the one holding the last prompt token
    assert off.lifetime_prefill_token_count == 2 * n
    assert on.lifetime_prefill_token_count == 2 * n - skip
    assert on.cached_prefix_token_count == skip > 0
    assert [r.logprobs for r in cached] == [r.logprobs for r in plain]
    on.reset()  # a new trial starts with an empty cache: it computes what the first did
    on.generate([prompt], PARAMS)
    assert on.lifetime_prefill_token_count == n


@pytest.mark.parametrize(
    ("eviction", "cache_tokens", "batch_tokens"),
    [("ref_zero", 16384, 512), ("lru", 16384, 24), ("lru", 112, 64), ("ref_zero", 112, 64)],
    ids=["ref-zero", "lru-chunked-prefill", "lru-preemption", "ref-zero-preemption"],
)
def test_cached_blocks_give_bit_identical_numbers(
    eviction, cache_tokens, batch_tokens, invariant_model, make_engine
):
    limits = dict(max_num_seqs=32, max_num_batched_tokens=batch_tokens)
    cache = CacheConfig(block_size=BS, num_blocks=cache_tokens // BS)
    off = make_engine(invariant_model, cache=cache, scheduler=SchedulerConfig(**limits))
    on = make_engine(invariant_model, cache=cache, scheduler=caching(eviction, **limits))
    plain, cached = off.generate(PROMPTS, PARAMS), on.generate(PROMPTS, PARAMS)
    assert on.cached_prefix_token_count > 0
    assert on.lifetime_prefill_token_count < off.lifetime_prefill_token_count
    if cache_tokens < 1000:
        assert on.scheduler.num_preemptions > 0
    for a, b in zip(plain, cached, strict=True):
        assert b.generated_tokens == a.generated_tokens
        assert b.prompt_logprobs == a.prompt_logprobs  # exact, the cached positions too
        assert b.generated_logprobs == a.generated_logprobs
    on.allocator.check_invariants()
    assert all(on.allocator.refs(b) == 0 for b in range(on.allocator.num_blocks))
