from logitsmatch.engine.block_allocator import BlockAllocator
from logitsmatch.engine.config import SchedulerConfig
from logitsmatch.engine.request import Request, SamplingParams
from logitsmatch.engine.scheduler import Scheduler


def make(rid: str, prompt_len: int, arrival: int, gen: int = 4) -> Request:
    params = SamplingParams(num_tokens_to_generate=gen)
    return Request(rid, "", list(range(prompt_len)), params, arrival=arrival)


def run_step(sched: Scheduler) -> list[tuple[str, int, int]]:
    """Schedule one step and pretend the model ran it (sampled token 7 where due)."""
    chunks = sched.schedule()
    for c in chunks:
        c.request.num_computed = c.end
        if c.sample:
            c.request.generated.append(7)
    for r in list(sched.running):
        if len(r.generated) >= r.params.num_tokens_to_generate:
            sched.finish(r)
    sched.allocator.check_invariants()
    return [(c.request.request_id, c.start, c.end) for c in chunks]


def test_chunked_prefill_splits_a_long_prompt_by_the_token_budget():
    sched = Scheduler(SchedulerConfig(max_num_batched_tokens=8), BlockAllocator(16, 4))
    sched.add(make("a", 20, 0))
    assert run_step(sched) == [("a", 0, 8)]
    assert run_step(sched) == [("a", 8, 16)]
    assert run_step(sched) == [("a", 16, 20)]
    assert run_step(sched) == [("a", 20, 21)]  # first decode


def test_without_chunking_a_prompt_waits_for_a_step_with_room():
    sched = Scheduler(
        SchedulerConfig(max_num_batched_tokens=8, chunked_prefill=False), BlockAllocator(16, 4)
    )
    sched.add(make("a", 6, 0))
    sched.add(make("b", 6, 1))
    assert run_step(sched) == [("a", 0, 6)]
    assert run_step(sched) == [("a", 6, 7), ("b", 0, 6)]


def test_decode_and_prefill_mix_in_one_step_and_respect_max_seqs():
    sched = Scheduler(
        SchedulerConfig(max_num_seqs=2, max_num_batched_tokens=64), BlockAllocator(32, 4)
    )
    for i in range(3):
        sched.add(make(str(i), 3, i))
    assert run_step(sched) == [("0", 0, 3), ("1", 0, 3)]
    assert run_step(sched) == [("0", 3, 4), ("1", 3, 4)]


def test_preemption_frees_the_newest_and_everything_finishes():
    # 3 blocks of 4 slots; two requests of 4 + 4 tokens cannot both fit at full length.
    sched = Scheduler(SchedulerConfig(max_num_batched_tokens=64), BlockAllocator(3, 4))
    a, b = make("a", 4, 0), make("b", 4, 1)
    sched.add(a)
    sched.add(b)
    for _ in range(40):
        if not sched.has_unfinished():
            break
        run_step(sched)
    assert not sched.has_unfinished()
    assert b.num_preemptions >= 1 and a.num_preemptions == 0
    assert len(a.generated) == len(b.generated) == 4
    assert sched.allocator.num_free == 3


# ---- prefix caching -------------------------------------------------------------------------


def prefix_step(sched: Scheduler) -> list[tuple[str, int, int]]:
    """run_step with prompt logprobs (a function of the prefix, as a model's are) and the
    engine's call to register_computed."""
    chunks = sched.schedule()
    for c in chunks:
        r = c.request
        if r.params.records_prompt:
            last = min(c.end, len(r.prompt_tokens) - 1)
            for p in range(max(c.start, len(r.prompt_logprobs)), last):
                r.prompt_logprobs.append(-sum(r.prompt_tokens[: p + 2]) / 1000)
        r.num_computed = c.end
        sched.register_computed(r)
        if c.sample:
            r.generated.append(7)
    for r in list(sched.running):
        if len(r.generated) >= r.params.num_tokens_to_generate:
            sched.finish(r)
    sched.allocator.check_invariants()
    return [(c.request.request_id, c.start, c.end) for c in chunks]


def cached_sched(eviction: str = "ref_zero", **config) -> Scheduler:
    return Scheduler(
        SchedulerConfig(prefix_caching=True, prefix_eviction=eviction, **config),
        BlockAllocator(16, 4, eviction),  # type: ignore[arg-type]
    )


def logged(rid: str, tokens: list[int], arrival: int) -> Request:
    params = SamplingParams(num_tokens_to_generate=2, return_log_probs=True)
    return Request(rid, "", tokens, params, arrival=arrival)


def test_a_repeated_prompt_waits_a_step_then_prefills_only_past_the_cached_blocks():
    sched = cached_sched()
    a, b = logged("a", list(range(10)), 0), logged("b", list(range(10)), 1)
    sched.add(a)
    sched.add(b)
    # b's first block is being computed by a: b waits rather than compute it too.
    assert prefix_step(sched) == [("a", 0, 10)]
    a_blocks = list(sched.allocator.table("a"))
    # then b reads blocks 0-1 (8 tokens) from the cache; the partial block [8, 10) is its own.
    assert prefix_step(sched) == [("a", 10, 11), ("b", 8, 10)]
    assert sched.prefill_tokens == 12 and sched.cached_tokens == 8  # 20 without caching
    assert sched.allocator.table("b")[:2] == a_blocks[:2]
    assert b.prompt_logprobs == a.prompt_logprobs and len(b.prompt_logprobs) == 9


def test_prompts_that_part_after_a_block_share_it_and_not_what_follows():
    sched = cached_sched()
    a = logged("a", [1, 2, 3, 4, 5, 6, 7, 8, 9], 0)
    b = logged("b", [1, 2, 3, 4, 5, 6, 7, 0, 9], 1)  # same first block, differs in the second
    c = logged("c", [1, 2, 3, 4, 6, 6, 7, 8, 9], 2)  # differs right after the first block
    for r in (a, b, c):
        sched.add(r)
    prefix_step(sched)
    assert prefix_step(sched) == [("a", 9, 10), ("b", 4, 9), ("c", 0, 9)]
    # c's first block is cached, but not the logprob of its 5th token after it: c computes all
    assert sched.cached_tokens == 4
    assert b.prompt_logprobs == [-sum(b.prompt_tokens[: p + 2]) / 1000 for p in range(8)]


def test_ref_zero_shares_only_while_a_holder_lives_and_lru_keeps_the_blocks():
    for eviction, skipped in (("ref_zero", 0), ("lru", 8)):
        sched = cached_sched(eviction)
        sched.add(logged("a", list(range(10)), 0))
        while sched.has_unfinished():
            prefix_step(sched)
        sched.add(logged("b", list(range(10)), 1))
        prefix_step(sched)
        assert sched.cached_tokens == skipped, eviction
        while sched.has_unfinished():
            prefix_step(sched)
    assert sched.allocator.num_free == 16  # lru's cached blocks count as free


def test_a_prompt_of_whole_blocks_still_computes_its_last_token():
    sched = cached_sched()
    sched.add(logged("a", list(range(8)), 0))
    sched.add(logged("b", list(range(8)), 1))
    prefix_step(sched)
    # 8 tokens = 2 full blocks, but the last token's logits are the first sample: skip only 4.
    assert prefix_step(sched) == [("a", 8, 9), ("b", 4, 8)]


def test_a_request_with_prompt_top_n_never_reads_the_cache():
    sched = cached_sched()
    top = SamplingParams(
        num_tokens_to_generate=2, top_n_logprobs=2, return_prompt_top_n_logprobs=True
    )
    sched.add(logged("a", list(range(10)), 0))
    sched.add(Request("b", "", list(range(10)), top, arrival=1))
    assert prefix_step(sched) == [("a", 0, 10), ("b", 0, 10)]
    assert sched.cached_tokens == 0


def test_cached_prefix_under_preemption_and_chunking_keeps_every_count_consistent():
    # 6 blocks of 4: three 9-token prompts that share 2 blocks cannot all grow to 13 tokens.
    sched = Scheduler(
        SchedulerConfig(max_num_batched_tokens=6, prefix_caching=True, prefix_eviction="lru"),
        BlockAllocator(6, 4, "lru"),
    )
    reqs = [logged(str(i), [5, 5, 5, 5, 6, 6, 6, 6, i], i) for i in range(3)]
    for r in reqs:
        r.params = SamplingParams(num_tokens_to_generate=4, return_log_probs=True)
        sched.add(r)
    for _ in range(60):
        if not sched.has_unfinished():
            break
        prefix_step(sched)
    assert not sched.has_unfinished()
    assert all(len(r.generated) == 4 for r in reqs)
    for r in reqs:
        assert r.prompt_logprobs == [-sum(r.prompt_tokens[: p + 2]) / 1000 for p in range(8)]
    assert sched.cached_tokens > 0
    assert all(sched.allocator.refs(b) == 0 for b in range(6))
