from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.null_engine import NullEngine
from logitsmatch.serving.wire_sampling import sampling_to_wire
from logitsmatch.serving.worker_state import ReplicaState


def add(rid, n=2, stream=False, prompt="p"):
    return ["add", rid, prompt, sampling_to_wire(SamplingParams(num_tokens_to_generate=n)), stream]


def test_a_rejected_request_is_an_error_for_that_request_only():
    state = ReplicaState(NullEngine())
    out = state.apply([add("a"), add("b", prompt=[]), add("c")])
    assert [(rid, code) for rid, code, _ in out.errors] == [("b", "rejected")]
    assert state.active == {"a", "c"}


def test_pause_holds_the_steps_and_unpause_resumes():
    state = ReplicaState(NullEngine())
    state.apply([add("a"), ["pause"]])
    assert not state.should_step()
    state.apply([["unpause"]])
    assert state.should_step()


def test_stop_aborts_everything_in_flight_and_exits():
    state = ReplicaState(NullEngine())
    state.apply([add("a", n=9), add("b", n=9)])
    state.step()
    out = state.apply([["stop"], add("late")])
    assert out.exit == "stop"
    assert sorted((r.request_id, r.finish_reason) for r in out.records) == [
        ("a", "aborted"),
        ("b", "aborted"),
    ]
    assert "late" not in state.active


def test_lost_carries_the_reason():
    out = ReplicaState(NullEngine()).apply([["lost", "coordinator gone"]])
    assert (out.exit, out.lost) == ("lost", "coordinator gone")


def test_partials_send_each_token_once_with_its_offset():
    state = ReplicaState(NullEngine())
    state.apply([add("s", n=4, stream=True), add("q", n=4)])
    state.step()
    state.step()
    assert [(rid, off, len(toks)) for rid, off, toks in state.partials()] == [("s", 0, 2)]
    state.step()
    assert [(rid, off, len(toks)) for rid, off, toks in state.partials()] == [("s", 2, 1)]
    assert state.partials() == []


class NoProgress:
    def add_request(self, *a, **k):
        raise AssertionError("must not be reached")


def test_streaming_needs_an_engine_with_progress():
    out = ReplicaState(NoProgress()).apply([add("s", stream=True)])
    assert out.errors[0][:2] == ("s", "cannot_stream")


class Choking(NullEngine):
    def add_request(self, prompt, params, request_id=None):
        if prompt == "boom":
            raise KeyError("tokenizer bug")
        return super().add_request(prompt, params, request_id)


def test_an_engine_failure_while_adding_fails_that_request_only():
    state = ReplicaState(Choking())
    out = state.apply([add("a", prompt="boom"), add("b")])
    assert [(rid, code) for rid, code, _ in out.errors] == [("a", "rejected")]
    assert "KeyError('tokenizer bug')" in out.errors[0][2]
    assert state.active == {"b"}
