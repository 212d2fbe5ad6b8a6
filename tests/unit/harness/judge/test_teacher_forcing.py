"""Teacher forcing bookkeeping: scoring flags, prompts, and lining scores up with the golden."""

import pytest

from logitsmatch.harness.judge import compare
from logitsmatch.harness.judge.teacher_forcing import (
    diverged_requests,
    forced_logprobs,
    scoring_args,
    scoring_prompts,
)

GOLDEN = {
    "0": {
        "input_prompt": "a b c",
        "generated_text": " x y",
        "generated_tokens": [7, 8],
        "logprobs": [-1.0, -2.0, -0.5, -0.25],
    },
    "1": {
        "input_prompt": "d",
        "generated_text": " z",
        "generated_tokens": [9],
        "logprobs": [-0.125],
    },
}


def test_scoring_is_greedy_with_one_token_and_keeps_model_and_layout():
    args = scoring_args(
        {
            "--model": "tiny",
            "--tensor-model-parallel-size": 2,
            "--batch-invariant": True,
            "--top_k": 0,
            "--top_p": 0.9,
            "--temperature": 0.7,
            "--stop-strings": ["."],
            "--num-tokens-to-generate": 30,
        }
    )
    assert args == {
        "--model": "tiny",
        "--tensor-model-parallel-size": 2,
        "--batch-invariant": True,
        "--num-tokens-to-generate": 1,
        "--top-k": 1,
        "--return-log-probs": True,
    }


def test_scoring_prompts_are_prompt_tokens_then_golden_tokens():
    encode = {"a b c": [1, 2, 3], "d": [4]}.__getitem__
    assert scoring_prompts(GOLDEN, ["0", "1"], encode) == [[1, 2, 3, 7, 8], [4, 9]]


def test_forced_logprobs_line_up_with_the_golden_layout():
    # prompt [1,2,3] + golden [7,8] scored: 4 prompt logprobs + 1 for the generated token.
    scored = {"logprobs": [-1.1, -2.1, -0.6, -0.3, -9.0]}
    assert forced_logprobs(GOLDEN["0"], scored) == [-1.1, -2.1, -0.6, -0.3]
    with pytest.raises(ValueError, match="2 logprobs for 4 golden positions"):
        forced_logprobs(GOLDEN["0"], {"logprobs": [-1.0, -2.0, -3.0]})


def test_only_requests_whose_tokens_changed_are_scored():
    current = {
        "0": {**GOLDEN["0"], "generated_tokens": [7, 5]},
        "1": {**GOLDEN["1"], "logprobs": [-0.5]},
    }
    verdict = compare(GOLDEN, current)
    assert not verdict.passed
    assert diverged_requests(verdict.requests, GOLDEN) == ["0"]
