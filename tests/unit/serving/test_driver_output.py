import asyncio

import pytest

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.driver import drive, to_output_json


def test_output_json_has_megatron_fields_ids_in_order_and_throughput():
    records = [
        {
            "input_prompt": "a",
            "generated_text": "x",
            "generated_tokens": [1, 2],
            "latency": 0.5,
            "logprobs": [-1.0],
            "finish_reason": "length",
            "replica": "r0",
            "request_id": "0",
            "engine_latency": 0.1,
        },
        {
            "input_prompt": "b",
            "generated_text": "y",
            "generated_tokens": [3],
            "latency": 0.25,
            "finish_reason": "length",
        },
    ]
    out = to_output_json(records)
    assert list(out) == ["0", "1", "throughput"]
    assert out["0"] == {
        "input_prompt": "a",
        "generated_text": "x",
        "generated_tokens": [1, 2],
        "logprobs": [-1.0],
        "latency": 0.5,
        "finish_reason": "length",
    }
    assert "logprobs" not in out["1"]
    assert out["throughput"] == [4.0, 4.0]


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_burst_size_is_validated(k):
    with pytest.raises(ValueError, match="incoming_requests_per_step must be an int >= 1"):
        asyncio.run(drive("tcp://127.0.0.1:1", ["a"], SamplingParams(), k))
