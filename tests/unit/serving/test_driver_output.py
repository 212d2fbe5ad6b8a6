import asyncio

import pytest

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.driver import drive, to_output_json


def test_output_json_keeps_record_fields_ids_in_order_and_one_throughput():
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
            "top_n_logprobs": [{"3": -0.5, "7": -1.5}],
        },
    ]
    out = to_output_json(records, elapsed_s=2.0)
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
    # the driver keeps every record field the engine sent, top-n logprobs included
    assert out["1"]["top_n_logprobs"] == [{"3": -0.5, "7": -1.5}]
    # one figure per run, as the in-process path writes it: 3 tokens in 2 s
    assert out["throughput"] == [1.5]


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_burst_size_is_validated(k):
    with pytest.raises(ValueError, match="incoming_requests_per_step must be an int >= 1"):
        asyncio.run(drive("tcp://127.0.0.1:1", ["a"], SamplingParams(), k))
