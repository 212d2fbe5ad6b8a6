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
