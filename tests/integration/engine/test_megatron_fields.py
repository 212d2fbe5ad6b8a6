"""The per-request fields Megatron-LM's dynamic-inference test writes, from the real SmolLM2
engine: prompt/generated logprobs, prompt top-n, ttft, step_count, and the prefill count."""

import pytest

from logitsmatch.engine.config import CacheConfig, SchedulerConfig
from logitsmatch.engine.request import SamplingParams
from logitsmatch.record import REQUEST_FIELDS

CONTENT_FIELDS = [spec.name for spec in REQUEST_FIELDS if not spec.timing]

PARAMS = SamplingParams(
    num_tokens_to_generate=6,
    return_log_probs=True,
    top_n_logprobs=4,
    return_prompt_top_n_logprobs=True,
    termination_id=-1,
)
PROMPTS = ["The quick brown fox jumps over the lazy dog because", "def fib(n):", "Hi"]


def test_logprobs_are_prompt_then_generated_and_timings_are_ordered(invariant_model, make_engine):
    engine = make_engine(invariant_model)
    records = engine.generate(PROMPTS, PARAMS)
    for prompt, r in zip(PROMPTS, records, strict=True):
        n = len(engine.tokenizer.encode(prompt))
        assert r.logprobs == r.prompt_logprobs + r.generated_logprobs
        assert len(r.prompt_logprobs) == n - 1
        assert len(r.generated_logprobs) == len(r.generated_tokens) == 6
        assert len(r.prompt_top_n_logprobs) == n - 1
        assert len(r.top_n_logprobs) == 6
        assert 0 < r.ttft <= r.latency
        # all three prefill in step 1 and finish at step 6, the engine's step count
        assert r.step_count == engine.steps == 6
    assert "prompt_top_n_logprobs" in records[0].to_json()


def test_prompt_top_n_is_what_the_prefix_alone_would_predict(invariant_model, make_engine):
    engine = make_engine(invariant_model)
    tokens = engine.tokenizer.encode(PROMPTS[0])
    whole = engine.generate([tokens], PARAMS)[0]
    for p in (0, 3, len(tokens) - 2):
        prefix = engine.generate([tokens[: p + 1]], PARAMS)[0]
        # batch-invariant: the prompt row and the prefix's last row give the same numbers
        assert whole.prompt_top_n_logprobs[p] == prefix.top_n_logprobs[0]
    for p, top in enumerate(whole.prompt_top_n_logprobs):
        assert len(top) == 4
        values = list(top.values())
        assert values == sorted(values, reverse=True)
        actual = str(tokens[p + 1])
        if actual in top:  # the prompt's own next token: the same logprob both ways
            assert top[actual] == whole.prompt_logprobs[p]


def test_prompt_top_n_survives_chunking_and_mixed_batches(invariant_model, make_engine):
    plain = SamplingParams(num_tokens_to_generate=6, return_log_probs=True, termination_id=-1)
    top2 = SamplingParams(num_tokens_to_generate=3, top_n_logprobs=2, termination_id=-1)
    params = [PARAMS, plain, top2]
    solo = make_engine(invariant_model)
    alone = [solo.generate([p], q)[0] for p, q in zip(PROMPTS, params, strict=True)]
    chunked = make_engine(invariant_model, scheduler=SchedulerConfig(max_num_batched_tokens=5))
    for prompt, q in zip(PROMPTS, params, strict=True):
        chunked.add_request(prompt, q)
    done = {}
    while chunked.has_unfinished():
        done.update({r.request_id: r for r in chunked.step()})
    for i, want in enumerate(alone):
        for field in CONTENT_FIELDS:
            assert getattr(done[str(i)], field) == getattr(want, field), f"request {i}: {field}"
    assert "prompt_top_n_logprobs" not in done["1"].to_json()
    assert "prompt_logprobs" not in done["2"].to_json()


def test_prefill_count_covers_prompts_and_preemption_recompute(invariant_model, make_engine):
    params = SamplingParams(num_tokens_to_generate=8, termination_id=-1)
    engine = make_engine(
        invariant_model,
        cache=CacheConfig(block_size=16, num_blocks=6),
        scheduler=SchedulerConfig(max_num_seqs=8, max_num_batched_tokens=256),
    )
    text = "The quick brown fox jumps over the lazy dog. " * 20
    prompts = [engine.tokenizer.encode(text)[:n] for n in (30, 40, 20, 35)]
    engine.generate(prompts[:1], params)
    assert engine.lifetime_prefill_token_count == 30
    engine.reset()
    assert (engine.steps, engine.lifetime_prefill_token_count) == (0, 0)
    engine.generate(prompts, params)
    assert engine.scheduler.num_preemptions > 0
    assert engine.lifetime_prefill_token_count > 30 + 40 + 20 + 35


def test_reset_refuses_while_requests_run(invariant_model, make_engine):
    engine = make_engine(invariant_model)
    engine.add_request("Hello", PARAMS)
    with pytest.raises(RuntimeError, match="still running"):
        engine.reset()
