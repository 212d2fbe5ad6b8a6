import pytest

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.errors import ProtocolError
from logitsmatch.serving.fields import Body
from logitsmatch.serving.limits import Limits
from logitsmatch.serving.wire_sampling import sampling_from_wire, sampling_to_wire

OUTER = Body("submit", {"request_id": "7"})


def test_every_samplingparams_field_maps_one_to_one():
    params = SamplingParams(
        num_tokens_to_generate=9,
        temperature=0.7,
        top_k=0,
        top_p=0.95,
        seed=11,
        termination_id=2,
        stop_strings=("a", "bc"),
        return_log_probs=True,
        top_n_logprobs=5,
    )
    wire = sampling_to_wire(params)
    assert wire["stop_strings"] == ["a", "bc"]
    assert sampling_from_wire(OUTER, wire, Limits()) == params


def test_absent_keys_take_the_engine_defaults():
    assert sampling_from_wire(OUTER, {}, Limits()) == SamplingParams()
    assert sampling_from_wire(OUTER, {"termination_id": None}, Limits()).termination_id is None


@pytest.mark.parametrize(
    ("wire", "field"),
    [
        ({"seed": 1.0}, "seed"),
        ({"return_log_probs": 1}, "return_log_probs"),
        ({"top_n_logprobs": 21}, "top_n_logprobs"),
        ({"stop_strings": "x"}, "stop_strings"),
        ({"stop_strings": ["a"] * 17}, "stop_strings"),
        ({"temperature": float("nan")}, "temperature"),
        ({"termination_id": -2}, "termination_id"),
    ],
)
def test_bad_values_are_refused_naming_the_field(wire, field):
    with pytest.raises(ProtocolError) as info:
        sampling_from_wire(OUTER, wire, Limits())
    assert info.value.field == field
    assert info.value.request_id == "7"


def test_the_tokens_limit_comes_from_limits():
    with pytest.raises(ProtocolError, match=r"must be in \[1, 8\]"):
        sampling_from_wire(OUTER, {"num_tokens_to_generate": 9}, Limits(max_tokens_to_generate=8))
