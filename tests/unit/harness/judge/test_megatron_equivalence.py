"""Our verdicts equal Megatron-LM's test_inference_regular_pipeline.py on its own golden file.

The expected verdicts below are what that test gives on each perturbed copy (read from its
source: checks only METRICS present in the golden request, exact tokens, equal-length logprobs
within abs 1e-3, common text prefix, throughput 0.9×..1.2× of the median after warm-up, memory
±5%, golden ids ⊇ run ids and each golden id indexed in the run).
"""

import copy
import json
from pathlib import Path

import pytest

from logitsmatch.harness.cases import load_case
from logitsmatch.harness.goldens import load_output
from logitsmatch.harness.judge import compare

MEGATRON = (
    Path(__file__).parents[3]
    / "data"
    / "megatron"
    / "gpt_dynamic_inference_tp1_pp8_dp1_583m_logitsmatch_zmq"
)
GOLDEN = MEGATRON / "golden_values_dev_dgx_h100.json"
CASE_METRICS = ("generated_tokens", "logprobs")
WITH_TEXT = (*CASE_METRICS, "generated_text")
WITH_RUN = (*CASE_METRICS, "throughput", "mem-max-allocated-bytes")


def _set(path, value):
    def mutate(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value(target[path[-1]]) if callable(value) else value

    return mutate


def _drop(key):
    return lambda doc: doc.pop(key)


def _add_request(doc):
    doc["1"] = copy.deepcopy(doc["0"])


def _run_metrics(golden_thr, current_thr, golden_mem, current_mem):
    def prepare(golden, current):
        for doc, thr, mem in (
            (golden, golden_thr, golden_mem),
            (current, current_thr, current_mem),
        ):
            if thr is not None:
                doc["throughput"] = thr
            if mem is not None:
                doc["mem-max-allocated-bytes"] = mem

    return prepare


# (name, mutation of the run's copy, METRICS, Megatron's verdict)
PERTURBATIONS = [
    ("identical", None, CASE_METRICS, True),
    ("token changed", _set(["0", "generated_tokens", 5], 4242), CASE_METRICS, False),
    ("last token changed", _set(["0", "generated_tokens", 29], 1), CASE_METRICS, False),
    ("logprob moved by 2e-3", _set(["0", "logprobs", 50], lambda v: v + 2e-3), CASE_METRICS, False),
    ("logprob moved by 5e-4", _set(["0", "logprobs", 50], lambda v: v + 5e-4), CASE_METRICS, True),
    (
        "every logprob moved by 9e-4",
        _set(["0", "logprobs"], lambda v: [x - 9e-4 for x in v]),
        CASE_METRICS,
        True,
    ),
    ("request dropped", _drop("0"), CASE_METRICS, False),
    ("NaN logprob", _set(["0", "logprobs", 7], float("nan")), CASE_METRICS, False),
    ("logprobs one short", _set(["0", "logprobs"], lambda v: v[:-1]), CASE_METRICS, False),
    ("extra request in the run", _add_request, CASE_METRICS, False),
    (
        "tokens changed but not in METRICS",
        _set(["0", "generated_tokens", 3], 7),
        ("logprobs",),
        True,
    ),
    ("text changed but not in METRICS", _set(["0", "generated_text"], "other"), CASE_METRICS, True),
    ("latency changed", _set(["0", "latency"], 99.0), CASE_METRICS, True),
    ("text is a prefix", _set(["0", "generated_text"], lambda t: t[:20]), WITH_TEXT, True),
    (
        "text changed",
        _set(["0", "generated_text"], lambda t: t[:20] + "X" + t[21:]),
        WITH_TEXT,
        False,
    ),
    ("text empty", _set(["0", "generated_text"], ""), WITH_TEXT, False),
]

RUN_CASES = [
    ("same speed and memory", _run_metrics([5, 100, 100], [5, 100, 100], 1000, 1000), True),
    ("5% slower", _run_metrics([5, 100, 100], [5, 95, 95], 1000, 1000), True),
    ("15% slower", _run_metrics([5, 100, 100], [5, 85, 85], 1000, 1000), False),
    ("19% faster", _run_metrics([5, 100, 100], [5, 119, 119], 1000, 1000), True),
    ("25% faster", _run_metrics([5, 100, 100], [5, 125, 125], 1000, 1000), False),
    ("warm-up sample ignored", _run_metrics([5, 100, 100], [900, 100, 100], 1000, 1000), True),
    ("memory +4.9%", _run_metrics([5, 100, 100], [5, 100, 100], 1000, 1049), True),
    ("memory +6%", _run_metrics([5, 100, 100], [5, 100, 100], 1000, 1060), False),
    ("memory -6%", _run_metrics([5, 100, 100], [5, 100, 100], 1000, 940), False),
    (
        "memory list, median after warm-up",
        _run_metrics(None, None, [1, 1000, 1000], [9, 1010, 1020]),
        True,
    ),
    ("golden without run metrics", _run_metrics(None, [5, 1, 1], None, 1), True),
    ("run does not record throughput", _run_metrics([5, 100, 100], None, None, None), False),
    ("run does not record memory", _run_metrics(None, None, 1000, None), False),
]


@pytest.fixture(scope="module")
def golden():
    return load_output(GOLDEN)


@pytest.mark.parametrize(
    ("name", "mutate", "metrics", "megatron_passes"),
    PERTURBATIONS,
    ids=[p[0] for p in PERTURBATIONS],
)
def test_request_verdicts_equal_megatron(golden, name, mutate, metrics, megatron_passes):
    current = copy.deepcopy(golden)
    if mutate:
        mutate(current)
    verdict = compare(golden, current, metrics=metrics, case="megatron", platform="dgx_h100")
    assert verdict.passed is megatron_passes, [m.message for _, m in verdict.failures()]


@pytest.mark.parametrize(
    ("name", "prepare", "megatron_passes"), RUN_CASES, ids=[c[0] for c in RUN_CASES]
)
def test_run_metric_verdicts_equal_megatron(golden, name, prepare, megatron_passes):
    g, current = copy.deepcopy(golden), copy.deepcopy(golden)
    prepare(g, current)
    verdict = compare(g, current, metrics=WITH_RUN)
    assert verdict.passed is megatron_passes, [m.message for _, m in verdict.failures()]


def test_megatron_case_metrics_drive_the_comparison(golden):
    case = load_case(MEGATRON)
    current = copy.deepcopy(golden)
    current["0"]["generated_text"] = "entirely different"
    verdict = compare(golden, current, case.tolerances, metrics=case.metrics)
    assert verdict.passed
    assert [m.metric for m in verdict.requests[0].metrics] == ["generated_tokens", "logprobs"]


def test_failure_names_the_first_diverging_position_and_both_values(golden):
    current = copy.deepcopy(golden)
    current["0"]["generated_tokens"][12] = 4242
    current["0"]["logprobs"][99] -= 0.25
    verdict = compare(golden, current, metrics=CASE_METRICS, case="c", platform="p")
    tokens, logprobs = verdict.requests[0].metrics
    assert (tokens.position, tokens.golden, tokens.current) == (12, 1321, 4242)
    assert logprobs.position == 99 and logprobs.golden == golden["0"]["logprobs"][99]
    assert logprobs.max_abs_delta == pytest.approx(0.25)
    # 117 logprobs = 87 prompt + 30 generated: index 99 is generated token 12
    assert "logprob[99] (generated token 12)" in logprobs.message
    assert verdict.requests[0].worst[0].index == 99


def test_megatron_golden_file_is_unmodified_json():
    raw = json.loads(GOLDEN.read_text())
    assert list(raw) == ["0"]
    assert len(raw["0"]["generated_tokens"]) == 30 and len(raw["0"]["logprobs"]) == 117
