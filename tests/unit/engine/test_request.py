import pytest

from logitsmatch.engine.request import SamplingParams


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_tokens_to_generate": 0}, "num_tokens_to_generate must be an int >= 1, got 0"),
        ({"temperature": 0.0}, "temperature must be a finite number > 0, got 0.0"),
        ({"temperature": float("nan")}, "temperature must be a finite number > 0"),
        ({"top_k": -1}, "top_k must be an int >= 0"),
        ({"top_k": 0, "top_p": 1.5}, r"top_p must be in \[0, 1\]"),
        ({"top_k": 1, "top_p": 0.9}, "has no effect with top_k=1"),
        ({"top_n_logprobs": 50}, r"top_n_logprobs must be an int in \[0, 20\]"),
        ({"stop_strings": ("",)}, "stop_strings must be non-empty strings"),
    ],
)
def test_invalid_sampling_values_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def test_defaults_are_greedy():
    assert SamplingParams().greedy
