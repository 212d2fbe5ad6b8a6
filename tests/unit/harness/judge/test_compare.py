"""Comparison rules beyond Megatron's: near-ties, drift, non-finite values, structure."""

import math

import pytest

from logitsmatch.harness.judge import Tolerances, compare, request_ids
from logitsmatch.harness.judge.divergence import drift_at_every_position, with_token_text


def request(tokens, logprobs, text="abc", top_n=None):
    out = {
        "input_prompt": "p",
        "generated_text": text,
        "generated_tokens": list(tokens),
        "logprobs": list(logprobs),
    }
    if top_n is not None:
        out["top_n_logprobs"] = top_n
    return out


# 2 prompt logprobs + 3 generated
GOLDEN = {
    "_provenance": {"platform": "cpu"},
    "throughput": [1.0, 2.0],
    "0": request([5, 6, 7], [-1.0, -2.0, -0.1, -0.2, -0.3]),
}


def test_provenance_and_run_metrics_are_not_requests():
    assert request_ids(GOLDEN) == ["0"]
    assert compare(GOLDEN, {"0": GOLDEN["0"]}).passed


def test_near_tie_when_each_token_is_in_the_others_top_n():
    golden = {
        "0": request(
            [5, 6, 7],
            [-1, -2, -0.1, -0.2, -0.3],
            top_n=[{"5": -0.1}, {"6": -0.69, "9": -0.70}, {"7": -0.3}],
        )
    }
    current = {
        "0": request(
            [5, 9, 7],
            [-1, -2, -0.1, -0.6905, -0.3],
            top_n=[{"5": -0.1}, {"9": -0.6905, "6": -0.6907}, {"7": -0.3}],
        )
    }
    verdict = compare(golden, current, case="c", platform="cpu")
    d = verdict.requests[0].divergence
    assert not verdict.passed
    assert (d.position, d.golden_token, d.current_token, d.kind) == (1, 6, 9, "near-tie")
    assert d.current_gap == pytest.approx(0.0002) and d.golden_gap == pytest.approx(0.01)
    assert "near-tie" in d.describe() and "current top-1/top-2 gap 0.0002" in d.describe()


def test_real_change_when_both_tokens_are_in_the_top_n_but_far_apart():
    # The reference case's widest gap, 5.3 nats: within a top-5 on both sides, not a near-tie.
    golden = {
        "0": request([5, 6], [-1, -2, -0.1, -0.2], top_n=[{"5": -0.1}, {"6": -0.2, "9": -5.5}])
    }
    current = {
        "0": request([5, 9], [-1, -2, -0.1, -5.5], top_n=[{"5": -0.1}, {"6": -0.2, "9": -5.5}])
    }
    d = compare(golden, current).requests[0].divergence
    assert (d.position, d.kind) == (1, "real change")


def test_real_change_when_the_golden_token_left_the_top_n():
    current = {
        "0": request(
            [5, 9, 7],
            [-1, -2, -0.1, -0.01, -0.3],
            top_n=[{"5": -0.1}, {"9": -0.01, "4": -5.0}, {"7": -0.3}],
        )
    }
    d = compare(GOLDEN, current).requests[0].divergence
    assert d.kind == "real change" and d.current_gap == pytest.approx(4.99)
    assert "only the current side was checked" in d.note


def test_divergence_is_unknown_without_top_n_and_notes_an_early_stop():
    d = compare(GOLDEN, {"0": request([5, 8, 7], GOLDEN["0"]["logprobs"])}).requests[0].divergence
    assert d.kind == "unknown"
    d = compare(GOLDEN, {"0": request([5, 6], [-1, -2, -0.1, -0.2])}).requests[0].divergence
    assert (d.position, d.current_token, d.kind) == (2, None, "real change")
    assert d.note == "current stopped after 2 tokens"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_never_passes_even_when_equal(bad):
    golden = {"0": request([1], [-1.0, bad])}
    verdict = compare(golden, {"0": request([1], [-1.0, bad])})
    assert not verdict.passed
    result = verdict.requests[0].metrics[1]
    assert result.position == 1 and result.max_abs_delta == math.inf


def test_tolerance_override_per_case():
    current = {"0": request([5, 6, 7], [-1.0, -2.0, -0.1, -0.2, -0.303])}
    assert not compare(GOLDEN, current).passed
    assert compare(GOLDEN, current, Tolerances(logprobs_abs=5e-3)).passed


def test_a_request_the_run_failed_fails_with_its_error():
    verdict = compare(GOLDEN, {"0": {"input_prompt": "p", "error": "prompt too long"}})
    messages = [m.message for _, m in verdict.failures()]
    assert "the run failed it: prompt too long" in messages
    assert "golden has generated_tokens, the run does not" in messages


def test_golden_without_requests_fails():
    verdict = compare({"_provenance": {}}, {})
    assert not verdict.passed
    assert "the golden holds no requests" in verdict.failures()[0][1].message


def test_nothing_checked_fails():
    verdict = compare({"0": {"latency": 1.0}}, {"0": {"latency": 1.0}})
    assert "nothing was checked" in verdict.failures()[0][1].message


def test_throughput_listed_but_not_in_golden_is_reported_skipped():
    verdict = compare(
        {"0": GOLDEN["0"]},
        {"0": GOLDEN["0"], "throughput": [3.0]},
        metrics=["generated_tokens", "throughput"],
    )
    assert verdict.passed and verdict.run_metrics[0].status == "skipped"


def test_one_sample_throughput_is_compared_as_that_sample():
    golden = {**GOLDEN, "throughput": [100.0]}
    slow = compare(golden, {"0": GOLDEN["0"], "throughput": [80.0]}, metrics=["throughput"])
    assert not slow.passed
    assert slow.run_metrics[0].max_abs_delta == pytest.approx(-0.2)


def test_teacher_forced_drift_at_every_position():
    scores = [-1.0, -2.0005, -0.1, -0.25, math.nan]
    drift = drift_at_every_position(GOLDEN["0"], scores)
    assert drift[:4] == pytest.approx([0.0, 0.0005, 0.0, 0.05]) and drift[4] == math.inf
    current = {"0": request([5, 9, 9], [-1.0, -2.0005, -0.1, -0.9, -0.9])}
    verdict = compare(GOLDEN, current, teacher_forced={"0": scores})
    assert verdict.requests[0].drift == tuple(drift)
    with pytest.raises(ValueError, match="teacher-forced scores have 2 logprobs, the golden has 5"):
        drift_at_every_position(GOLDEN["0"], [-1.0, -2.0])


def test_worst_positions_sorted_by_delta():
    current = {"0": request([5, 6, 7], [-1.0, -2.5, -0.1, -0.2, -0.35])}
    worst = compare(GOLDEN, current).requests[0].worst
    assert [(w.index, w.label) for w in worst] == [
        (1, "logprob[1] (prompt token 2)"),
        (4, "logprob[4] (generated token 2)"),
    ]


def test_a_divergence_names_both_tokens_as_text_when_decoded():
    golden = {"0": {"generated_tokens": [1, 358], "logprobs": [-1.0, -0.5, -0.25]}}
    current = {"0": {"generated_tokens": [1, 357], "logprobs": [-1.0, -0.5, -0.3]}}
    verdict = compare(golden, current, case="c", platform="cpu")
    plain = verdict.request("0").divergence
    assert plain is not None and "golden 358 vs current 357" in plain.describe()
    words = {358: " the", 357: " a"}
    named = with_token_text(verdict, lambda ids: "".join(words[i] for i in ids))
    text = named.request("0").divergence.describe()
    assert "generated position 1: golden 358 ' the' vs current 357 ' a'" in text
