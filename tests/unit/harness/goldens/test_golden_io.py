"""Golden files: clear load errors, refusal to record failures, provenance, diffs."""

import json
import math
import os
import stat
from pathlib import Path

import pytest

from logitsmatch.harness.goldens import (
    GoldenError,
    GoldenRefused,
    collect_provenance,
    diff_goldens,
    load_output,
    write_golden,
)
from logitsmatch.harness.goldens.schema import OutputFormatError, validate_output
from logitsmatch.record import request_ids

MEGATRON_GOLDEN = (
    Path(__file__).parents[3]
    / "data"
    / "megatron"
    / "gpt_dynamic_inference_tp1_pp8_dp1_583m_logitsmatch_zmq"
    / "golden_values_dev_dgx_h100.json"
)
RUN = {
    "0": {
        "input_prompt": "p",
        "generated_text": " a b",
        "generated_tokens": [1, 2],
        "logprobs": [-0.5, -1.0, -2.0],
        "latency": 0.1,
        "finish_reason": "length",
    },
    "1": {
        "input_prompt": "q",
        "generated_text": " c",
        "generated_tokens": [3],
        "logprobs": [-0.25, -3.0],
        "latency": 0.1,
        "finish_reason": "length",
    },
    "throughput": [10.0],
}


def put(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "golden" / "cpu" / "case.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", r"case\.json: the golden file is empty"),
        ("  \n", r"case\.json: the golden file is empty"),
        ('{"0": {"generated_tokens": [1, 2]', r"case\.json: not valid JSON: .* line 1 column"),
        ("[1, 2]", r"case\.json: expected a JSON object of request id -> result, got list"),
        (
            '{"0": {"logprobs": [-1.0, NaN]}}',
            r"case\.json: '0'\.logprobs\[1\]: nan is not allowed in a golden",
        ),
        ('{"0": {"logprobs": [-1.0, -Infinity]}}', r"'0'\.logprobs\[1\]: -inf is not allowed"),
        (
            '{"0": {"generated_tokens": [1, "2"]}}',
            r"'0'\.generated_tokens\[1\]: expected an int token id, got '2'",
        ),
        ('{"0": {"generated_tokens": [1, true]}}', r"'0'\.generated_tokens\[1\]: expected an int"),
        ('{"0": {"logprobs": "-1.0"}}', r"'0'\.logprobs: expected a list of numbers"),
        ('{"0": [1, 2]}', r"'0': expected an object with generated_tokens"),
        ('{"0": {"generated_text": 5}}', r"'0'\.generated_text: expected a string, got 5"),
        ('{"throughput": []}', r"throughput: expected a number or a non-empty list"),
        ('{"_provenance": "me"}', r"_provenance: expected an object"),
        (
            '{"0": {"input_prompt": "p", "error": "boom"}}',
            r"'0'\.error: a golden must not record a failed request \(boom\)",
        ),
        (
            '{"0": {"top_n_logprobs": [{"5": "x"}]}}',
            r"'0'\.top_n_logprobs\[0\]\['5'\]: expected a "
            r"number",
        ),
    ],
)
def test_bad_golden_files_give_clear_errors(tmp_path, text, pattern):
    with pytest.raises(GoldenError, match=pattern):
        load_output(put(tmp_path, text))


def test_missing_golden_names_the_path(tmp_path):
    with pytest.raises(GoldenError, match=r"golden/cpu/nope\.json: no such golden file"):
        load_output(tmp_path / "golden" / "cpu" / "nope.json")


def test_run_output_may_hold_nan_for_the_comparison_to_fail(tmp_path):
    doc = load_output(put(tmp_path, '{"0": {"logprobs": [NaN]}}'), golden=False)
    assert math.isnan(doc["0"]["logprobs"][0])


def test_megatron_golden_and_its_jsonl_string_variant_load(tmp_path):
    doc = load_output(MEGATRON_GOLDEN)
    assert len(doc["0"]["logprobs"]) == 117
    as_string = put(tmp_path, json.dumps(MEGATRON_GOLDEN.read_text()))
    assert load_output(as_string) == doc


@pytest.mark.parametrize(
    ("output", "kwargs", "pattern"),
    [
        (RUN, {"run_error": "rank 3 exited with code 1"}, r"the run failed: rank 3 exited"),
        (
            {**RUN, "0": {**RUN["0"], "logprobs": [-0.5, math.nan, -2.0]}},
            {},
            r"'0'\.logprobs\[1\] is NaN/inf",
        ),
        ({**RUN, "throughput": [math.inf]}, {}, r"throughput\[0\] is NaN/inf"),
        (
            {**RUN, "1": {"input_prompt": "q", "error": "KV cache too small"}},
            {},
            r"request '1' failed: KV cache too small",
        ),
        ({"throughput": [1.0]}, {}, r"the run produced no requests"),
        (
            {**RUN, "1": {**RUN["1"], "generated_tokens": [3.5]}},
            {},
            r"'1'\.generated_tokens\[0\]: expected an int token id",
        ),
    ],
)
def test_record_refuses_failed_or_non_finite_runs(tmp_path, output, kwargs, pattern):
    path = tmp_path / "golden" / "cpu" / "case.json"
    with pytest.raises(GoldenRefused, match=pattern):
        write_golden(path, output, {"platform": "cpu"}, **kwargs)
    assert not path.exists()
    assert not any(tmp_path.rglob("*.json*"))


def test_record_refusal_keeps_the_old_golden(tmp_path):
    path = tmp_path / "g.json"
    write_golden(path, RUN, {"platform": "cpu"})
    before = path.read_text()
    with pytest.raises(GoldenRefused):
        write_golden(path, RUN, {"platform": "cpu"}, run_error="deadline of 900 s passed")
    assert path.read_text() == before


def test_provenance_is_written(tmp_path):
    provenance = collect_provenance("cpu", ["logitsmatch", "record", "case", "--platform", "cpu"])
    path = tmp_path / "golden" / "cpu" / "case.json"
    diff = write_golden(path, RUN, provenance)
    assert diff.new_file and diff.format().endswith("new golden")
    written = json.loads(path.read_text())
    assert next(iter(written)) == "_provenance"
    p = written["_provenance"]
    assert p["platform"] == "cpu" and p["command"] == "logitsmatch record case --platform cpu"
    assert p["packages"]["logitsmatch"] != "not installed"
    assert set(p["packages"]) >= {"torch", "numpy", "pyzmq"}
    assert p["cpu_model"] and p["device_name"] == p["cpu_model"]
    assert len(p["engine_commit"]) >= 7 and p["date"].endswith("+00:00")
    assert load_output(path)["0"] == RUN["0"]
    assert list(tmp_path.rglob(".case.json.*")) == []


def test_a_golden_is_readable_by_all_as_the_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        write_golden(tmp_path / "g.json", RUN, {"platform": "cpu"})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "g.json").stat().st_mode) == 0o644


def test_no_change_re_record_gives_an_empty_diff(tmp_path):
    path = tmp_path / "g.json"
    write_golden(path, RUN, {"date": "first"})
    rerun = json.loads(json.dumps(RUN))
    rerun["0"]["latency"], rerun["throughput"] = 0.7, [12.0]  # always change between runs
    diff = write_golden(path, rerun, {"date": "second"})
    assert diff.empty and diff.format() == f"{path}: no change"
    assert json.loads(path.read_text())["_provenance"] == {"date": "second"}


def test_diff_shows_changed_tokens_and_max_logprob_delta(tmp_path):
    path = tmp_path / "g.json"
    write_golden(path, RUN, {})
    new = json.loads(json.dumps(RUN))
    new["0"]["generated_tokens"][1] = 9
    new["0"]["logprobs"][2] = -2.25
    new["1"]["logprobs"][0] = -0.2505
    new["2"] = new.pop("1")
    diff = write_golden(path, new, {})
    assert not diff.empty and diff.added == ("2",) and diff.removed == ("1",)
    (change,) = diff.changed
    assert change.token_changes == ((1, 2, 9),)
    assert change.max_logprob_delta == pytest.approx(0.25)
    text = diff.format()
    assert "[1] 2->9" in text and "max |Δ logprob| 0.25" in text and "request '1' removed" in text


def test_diff_length_change_is_reported():
    old = {"0": RUN["0"]}
    new = {"0": {**RUN["0"], "generated_tokens": [1], "logprobs": [-0.5, -1.0]}}
    (change,) = diff_goldens(old, new).changed
    assert change.token_changes == ((1, 2, None),) and change.logprob_lengths == (3, 2)


def test_megatrons_run_level_fields_are_not_taken_for_requests():
    doc = {"0": {"generated_tokens": [1]}, "lifetime_prefill_token_count": 87, "throughput": [1.0]}
    validate_output(doc, "g.json", allow_nonfinite=False)
    assert request_ids(doc) == ["0"]
    with pytest.raises(OutputFormatError, match=r"lifetime_prefill_token_count: expected an int"):
        validate_output({"lifetime_prefill_token_count": 1.5}, "g.json", allow_nonfinite=False)


def test_a_diff_names_a_field_a_request_gained_or_lost():
    old = {"0": {"generated_tokens": [1], "latency": 1.0}}
    new = {"0": {"generated_tokens": [1], "latency": 2.0, "top_n_logprobs": [{"1": -0.1}]}}
    assert diff_goldens(old, new).changed[0].fields == ("top_n_logprobs (added)",)
    assert diff_goldens(new, old).changed[0].fields == ("top_n_logprobs (removed)",)
    assert diff_goldens(old, {"0": {"generated_tokens": [1], "latency": 3.0}}).empty
