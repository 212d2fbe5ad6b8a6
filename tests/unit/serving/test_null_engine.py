import pytest

from logitsmatch.engine.request import RequestError, SamplingParams
from logitsmatch.serving.null_engine import NullEngine


def test_one_token_per_step_derived_from_the_prompt():
    engine = NullEngine(vocab_size=100)
    engine.add_request(
        [10, 20], SamplingParams(num_tokens_to_generate=3, return_log_probs=True), request_id="a"
    )
    engine.add_request("A", SamplingParams(num_tokens_to_generate=1), request_id="b")
    assert [r.request_id for r in engine.step()] == ["b"]
    assert engine.progress("a") == [30]
    assert engine.step() == []
    (record,) = engine.step()
    assert record.generated_tokens == [30, 31, 32]
    assert len(record.logprobs) == 1 + 3  # prompt (n-1) + generated
    assert not engine.has_unfinished()


def test_abort_duplicates_and_empty_prompts():
    engine = NullEngine()
    engine.add_request("hi", SamplingParams(num_tokens_to_generate=5), request_id="x")
    with pytest.raises(RequestError, match="duplicate"):
        engine.add_request("hi", SamplingParams(), request_id="x")
    with pytest.raises(RequestError, match="empty prompt"):
        engine.add_request([], SamplingParams(), request_id="y")
    engine.step()
    record = engine.abort("x")
    assert record.finish_reason == "aborted" and len(record.generated_tokens) == 1
    assert engine.abort("x") is None and engine.progress("x") is None
