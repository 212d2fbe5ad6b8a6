"""The output record: one definition of the fields, their kinds, and the output JSON."""

import json
import math
from pathlib import Path

import pytest

from logitsmatch.record import (
    REQUEST_FIELDS,
    RUN_FIELD_NAMES,
    Kind,
    RecordError,
    RequestRecord,
    output_json,
    request_ids,
)

MEGATRON_FIELDS = {
    "input_prompt",
    "generated_text",
    "generated_tokens",
    "logprobs",
    "prompt_logprobs",
    "generated_logprobs",
    "top_n_logprobs",
    "prompt_top_n_logprobs",
    "latency",
    "ttft",
    "step_count",
    "finish_reason",
    "cuda_graph_request_count_map",
}
CORPUS = Path(__file__).parents[1] / "data" / "megatron"


def test_the_record_has_megatrons_current_names():
    # ours beside Megatron's: why a request failed, and what it prefilled (the ZMQ driver sums
    # it into lifetime_prefill_token_count, which Megatron writes only for in-process runs)
    ours = {"error", "prefill_token_count"}
    assert {spec.name for spec in REQUEST_FIELDS} == MEGATRON_FIELDS | ours
    assert {
        "throughput",
        "mem-max-allocated-bytes",
        "lifetime_prefill_token_count",
        "async_sched_step_count",
        "async_sched_compaction_step_count",
    } == RUN_FIELD_NAMES
    timing = {spec.name for spec in REQUEST_FIELDS if spec.timing}
    assert timing == {
        "latency",
        "ttft",
        "step_count",
        "cuda_graph_request_count_map",
        "prefill_token_count",
    }


def test_every_key_of_the_vendored_megatron_goldens_is_a_record_field():
    goldens = sorted(CORPUS.glob("*/golden_values_*.json"))
    assert len(goldens) == 32  # 31 folders; async_sched has an H100 and a GB200 golden
    request_keys, run_keys = set(), set()
    for path in goldens:
        for key, value in json.loads(path.read_text()).items():
            if key.isdigit():
                request_keys |= set(value)
            else:
                run_keys.add(key)
    assert request_keys <= {spec.name for spec in REQUEST_FIELDS}
    assert run_keys <= RUN_FIELD_NAMES


def test_to_json_omits_unset_fields_and_round_trips():
    record = RequestRecord(
        "3",
        input_prompt="a",
        generated_text="b",
        generated_tokens=[1, 2],
        logprobs=[-0.5, float("nan")],
        top_n_logprobs=[{"1": -0.1}, {"2": -0.2}],
        latency=0.25,
        finish_reason="length",
    )
    data = record.to_json()
    assert list(data) == [
        "input_prompt",
        "generated_text",
        "generated_tokens",
        "logprobs",
        "top_n_logprobs",
        "latency",
        "finish_reason",
    ]
    back = RequestRecord.from_json("3", data)
    assert back.generated_tokens == [1, 2] and math.isnan(back.logprobs[1])
    assert back.top_n_logprobs == [{"1": -0.1}, {"2": -0.2}]


@pytest.mark.parametrize(
    ("data", "where", "expected"),
    [
        ({"generated_tokens": [1, True]}, "'0'.generated_tokens", Kind.TOKENS.value),
        ({"logprobs": ["x"]}, "'0'.logprobs", Kind.FLOATS.value),
        ({"latency": -1.0}, "'0'.latency", Kind.SECONDS.value),
        ({"step_count": 1.5}, "'0'.step_count", Kind.COUNT.value),
        ({"top_n_logprobs": [{1: -0.1}]}, "'0'.top_n_logprobs", Kind.TOP_N.value),
        ({"generated_token": [1]}, "'0'.generated_token", "a known output field"),
    ],
)
def test_from_json_names_the_field_that_is_wrong(data, where, expected):
    with pytest.raises(RecordError) as info:
        RequestRecord.from_json("0", data)
    assert info.value.field == where and info.value.expected == expected


def test_output_json_orders_ids_numerically_and_checks_run_fields():
    records = [RequestRecord(str(i), generated_tokens=[i]) for i in (10, 2, 0)]
    doc = output_json(records, throughput=[5.0], mem_max_allocated_bytes=123)
    assert list(doc) == ["0", "2", "10", "throughput", "mem-max-allocated-bytes"]
    assert request_ids({**doc, "_provenance": {}}) == ["0", "2", "10"]
    with pytest.raises(ValueError, match="'tokens_per_s' is not a run-level field"):
        output_json(records, tokens_per_s=1.0)
    with pytest.raises(RecordError, match="throughput: expected a number or a non-empty list"):
        output_json(records, throughput=[])
