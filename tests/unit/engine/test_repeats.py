from dataclasses import replace

from logitsmatch.engine.repeats import COMPARED, first_difference
from logitsmatch.record import RequestRecord

A = RequestRecord(
    "0",
    input_prompt="hi",
    generated_text=" there",
    generated_tokens=[5, 6, 7],
    logprobs=[-1.0, -0.5, -0.25],
    latency=0.5,
    ttft=0.1,
    step_count=3,
)


def test_identical_trials_differ_nowhere_whatever_their_timings():
    later = replace(A, latency=9.0, ttft=2.0, step_count=40)
    assert first_difference([A], [later]) is None
    assert "latency" not in COMPARED and "logprobs" in COMPARED


def test_the_first_differing_position_and_both_values_are_named():
    later = replace(A, logprobs=[-1.0, -0.5000001, -0.3])
    assert first_difference([A], [later]) == "request 0: logprobs[1]: -0.5 then -0.5000001"
    assert (
        first_difference([A], [replace(A, generated_tokens=[5, 6])])
        == "request 0: generated_tokens: 3 entries then 2"
    )
    assert first_difference([A], [replace(A, finish_reason="length")]) == (
        "request 0: finish_reason: None then 'length'"
    )
    assert first_difference([A], []) == "request 0: missing"
