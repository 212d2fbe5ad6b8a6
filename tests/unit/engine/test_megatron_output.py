"""The Megatron-shaped output's plain-Python parts: which requests are written, the prompt top-n
option, the prefill-token count and the result layout that carries prompt top-n pairs."""

import pytest

from logitsmatch.engine.block_allocator import BlockAllocator
from logitsmatch.engine.config import SchedulerConfig
from logitsmatch.engine.generate_args import is_written
from logitsmatch.engine.request import Request, SamplingParams
from logitsmatch.engine.scheduler import ScheduledChunk, Scheduler
from logitsmatch.engine.step_results import plan
from logitsmatch.serving.driver import to_output_json
from logitsmatch.serving.fields import Body
from logitsmatch.serving.limits import Limits
from logitsmatch.serving.wire_sampling import sampling_from_wire, sampling_to_wire


@pytest.mark.parametrize(
    ("count", "every_n", "written"),
    [(5, 2, [0, 2, 4]), (6, 4, [0, 4, 5]), (3, 1, [0, 1, 2]), (4, 10, [0, 3]), (1, 3, [0])],
)
def test_every_nth_request_and_the_last_are_written(count, every_n, written):
    assert [i for i in range(count) if is_written(i, count, every_n)] == written


def test_driver_writes_every_nth_record_but_counts_all_in_throughput():
    records = [
        {
            "input_prompt": str(i),
            "generated_text": "x",
            "generated_tokens": [1, 2],
            "latency": 0.5,
            "finish_reason": "length",
        }
        for i in range(5)
    ]
    out = to_output_json(records, elapsed_s=2.0, output_every_n=2)
    assert list(out) == ["0", "2", "4", "throughput"]
    assert [out[k]["input_prompt"] for k in ("0", "2", "4")] == ["0", "2", "4"]
    assert out["throughput"] == [5.0]  # 10 tokens in 2 s: the unwritten requests count too


def test_prompt_top_n_needs_top_n_logprobs():
    with pytest.raises(ValueError, match="return_prompt_top_n_logprobs needs top_n_logprobs"):
        SamplingParams(return_prompt_top_n_logprobs=True)
    on = SamplingParams(top_n_logprobs=3, return_prompt_top_n_logprobs=True)
    assert (on.prompt_top_n, on.records_prompt) == (3, True)
    off = SamplingParams(top_n_logprobs=3)
    assert (off.prompt_top_n, off.records_prompt) == (0, False)


def test_prompt_top_n_option_crosses_the_wire():
    params = SamplingParams(top_n_logprobs=2, return_prompt_top_n_logprobs=True)
    wire = sampling_to_wire(params)
    assert wire["return_prompt_top_n_logprobs"] is True
    assert sampling_from_wire(Body("submit", {"request_id": "1"}), wire, Limits()) == params


def make(rid: str, prompt_len: int, arrival: int, gen: int = 4) -> Request:
    params = SamplingParams(num_tokens_to_generate=gen)
    return Request(rid, "", list(range(prompt_len)), params, arrival=arrival)


def run(sched: Scheduler) -> None:
    """Step until done, pretending the model ran each chunk (sampled token 7 where due)."""
    while sched.has_unfinished():
        for c in sched.schedule():
            c.request.num_computed = c.end
            if c.sample:
                c.request.generated.append(7)
        for r in list(sched.running):
            if len(r.generated) >= r.params.num_tokens_to_generate:
                sched.finish(r)


def test_prefill_count_is_the_prompt_tokens_when_nothing_is_preempted():
    sched = Scheduler(SchedulerConfig(max_num_batched_tokens=8), BlockAllocator(32, 4))
    sched.add(make("a", 20, 0))  # chunked: 8 + 8 + 4, then 4 decodes that do not count
    sched.add(make("b", 3, 1))
    run(sched)
    assert sched.prefill_tokens == 23
    sched.reset_counters()
    assert sched.prefill_tokens == 0


def test_a_preempted_request_is_prefilled_again_with_its_generated_tokens():
    # 3 blocks of 4 slots: a and b (4 + 4 tokens each) cannot both fit at full length.
    sched = Scheduler(SchedulerConfig(max_num_batched_tokens=64), BlockAllocator(3, 4))
    a, b = make("a", 4, 0), make("b", 4, 1)
    sched.add(a)
    sched.add(b)
    fed = 0
    while sched.has_unfinished():
        chunks = sched.schedule()
        fed += sum(c.num_tokens for c in chunks)
        for c in chunks:
            c.request.num_computed = c.end
            if c.sample:
                c.request.generated.append(7)
        for r in list(sched.running):
            if len(r.generated) >= r.params.num_tokens_to_generate:
                sched.finish(r)
    # a grows by a decode each step and preempts b each time, 3 times: b's prompt is prefilled
    # 4 times (a re-admission gets only the 4 slots left), the last time with its first
    # generated token too. Decodes: a's 3, and b's last 2.
    assert (a.num_preemptions, b.num_preemptions) == (0, 3)
    assert sched.prefill_tokens == 4 + 4 * 4 + 1
    assert sched.prefill_tokens == fed - 3 - 2


def test_result_layout_puts_prompt_top_n_pairs_between_logprobs_and_the_sample():
    params = SamplingParams(
        num_tokens_to_generate=2,
        return_log_probs=True,
        top_n_logprobs=3,
        return_prompt_top_n_logprobs=True,
    )
    request = Request("r", "", [5, 6, 7, 8], params)
    other = Request("s", "", [5, 6], SamplingParams(return_log_probs=True))
    plans, size = plan([ScheduledChunk(request, 0, 4), ScheduledChunk(other, 0, 2)])
    first, second = plans
    assert first.prompt_positions == [0, 1, 2]
    assert first.prompt_top_n_offset == 3
    assert first.sample_offset == 3 + 3 * 2 * 3
    assert first.width == 21 + 2 + 2 * 3
    assert second.offset == first.width
    assert second.sample_offset == second.offset + 1  # no prompt top-n asked: no pairs
    assert size == first.width + second.width
