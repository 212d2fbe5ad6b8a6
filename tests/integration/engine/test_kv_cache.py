"""Paged KV-cache edge cases, checked bit-exactly in batch-invariant mode."""

from logitsmatch.engine.config import CacheConfig, SchedulerConfig
from logitsmatch.engine.request import SamplingParams

PARAMS = SamplingParams(num_tokens_to_generate=8, return_log_probs=True, termination_id=-1)


def prompt_of(tokenizer, length: int) -> list[int]:
    ids = tokenizer.encode("The quick brown fox jumps over the lazy dog. " * 20)
    return ids[:length]


def test_sequences_ending_on_block_boundaries_match_one_big_block(invariant_model, make_engine):
    tiny_blocks = make_engine(invariant_model, cache=CacheConfig(block_size=4, num_blocks=512))
    one_block = make_engine(invariant_model, cache=CacheConfig(block_size=2048, num_blocks=1))
    tok = tiny_blocks.tokenizer
    # prompt 16 -> ends on a block; 16 + 8 = 24 -> the last generated token ends on one too.
    for length in (4, 15, 16, 17):
        a = tiny_blocks.generate([prompt_of(tok, length)], PARAMS)[0]
        b = one_block.generate([prompt_of(tok, length)], PARAMS)[0]
        assert (a.generated_tokens, a.logprobs) == (b.generated_tokens, b.logprobs)


def test_blocks_reused_after_completion_hold_no_stale_data(invariant_model, make_engine):
    # 3 blocks of 16: the second request must reuse the first one's freed blocks.
    engine = make_engine(invariant_model, cache=CacheConfig(block_size=16, num_blocks=3))
    tok = engine.tokenizer
    engine.generate([prompt_of(tok, 40)], PARAMS)
    reused = engine.generate([prompt_of(tok, 12)], PARAMS)[0]
    fresh = make_engine(invariant_model).generate([prompt_of(tok, 12)], PARAMS)[0]
    assert (reused.generated_tokens, reused.logprobs) == (fresh.generated_tokens, fresh.logprobs)


def test_chunked_prefill_equals_whole_prefill(invariant_model, make_engine):
    chunked = make_engine(invariant_model, scheduler=SchedulerConfig(max_num_batched_tokens=7))
    whole = make_engine(invariant_model, scheduler=SchedulerConfig(max_num_batched_tokens=512))
    prompt = prompt_of(chunked.tokenizer, 50)
    a = chunked.generate([prompt], PARAMS)[0]
    b = whole.generate([prompt], PARAMS)[0]
    assert chunked.steps >= 8 + 50 // 7
    assert (a.generated_tokens, a.logprobs) == (b.generated_tokens, b.logprobs)
    assert len(a.logprobs) == 49 + 8


def test_exhausted_cache_preempts_and_recovers(invariant_model, make_engine):
    engine = make_engine(
        invariant_model,
        cache=CacheConfig(block_size=16, num_blocks=6),
        scheduler=SchedulerConfig(max_num_seqs=8, max_num_batched_tokens=256),
    )
    prompts = [prompt_of(engine.tokenizer, n) for n in (30, 40, 20, 35)]
    records = engine.generate(prompts, PARAMS)
    assert engine.scheduler.num_preemptions > 0
    assert engine.allocator.num_free == 6
    for prompt, record in zip(prompts, records, strict=True):
        alone = make_engine(invariant_model).generate([prompt], PARAMS)[0]
        assert (record.generated_tokens, record.logprobs) == (
            alone.generated_tokens,
            alone.logprobs,
        )
