"""``generate --fp8-format hybrid --fp8-recipe tensorwise [--first-last-layers-bf16]``: the
blocks' GEMMs in emulated fp8 change the numbers (a little), deterministically, on one rank and
with tensor parallelism; a recipe the engine does not compute is refused."""

import json
import subprocess
import sys

import pytest

FLAGS = ["--model", "tiny", "--num-tokens-to-generate", "6", "--return-log-probs"]
FLAGS += ["--termination-id", "-1", "--bf16", "--prompts", "Time travel to 2008", "a b c"]
FP8 = ["--fp8-format", "hybrid", "--fp8-recipe", "tensorwise"]


def generate(tmp_path, name: str, *flags: str) -> dict:
    out = tmp_path / f"{name}.json"
    cmd = [sys.executable, "-m", "logitsmatch.cli", "generate", *FLAGS, *flags]
    cmd += ["--output-path", str(out), "--run-dir", str(tmp_path / name)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def max_delta(a: dict, b: dict) -> float:
    pairs = [zip(a[r]["logprobs"], b[r]["logprobs"], strict=True) for r in ("0", "1")]
    return max(abs(x - y) for pair in pairs for x, y in pair)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("fp8")
    return {
        "bf16": generate(tmp, "bf16"),
        "fp8": generate(tmp, "fp8", *FP8),
        "fp8 again": generate(tmp, "fp8_again", *FP8),
        "fp8 first/last bf16": generate(tmp, "fp8_fl", *FP8, "--first-last-layers-bf16"),
        "fp8 tp2": generate(tmp, "fp8_tp2", *FP8, "--tensor-model-parallel-size", "2"),
    }


def test_fp8_moves_the_numbers_a_little_and_repeats_exactly(runs):
    moved = max_delta(runs["bf16"], runs["fp8"])
    assert 1e-4 < moved < 1.0
    assert max_delta(runs["fp8"], runs["fp8 again"]) == 0.0


def test_first_and_last_blocks_in_bf16_is_another_computation(runs):
    keep = max_delta(runs["fp8"], runs["fp8 first/last bf16"])
    assert keep > 1e-4
    # Half of tiny's 4 blocks stay bf16: closer to bf16 than all-fp8 is.
    assert max_delta(runs["bf16"], runs["fp8 first/last bf16"]) < max_delta(
        runs["bf16"], runs["fp8"]
    )


def test_fp8_runs_tensor_parallel(runs):
    # Each TP rank scales its own shard (as Transformer Engine's tensorwise recipe does).
    assert len(runs["fp8 tp2"]["0"]["logprobs"]) == len(runs["fp8"]["0"]["logprobs"])
    assert max_delta(runs["fp8"], runs["fp8 tp2"]) < 1.0


def test_an_unknown_recipe_or_a_recipe_without_format_is_refused(tmp_path):
    base = [sys.executable, "-m", "logitsmatch.cli", "generate", *FLAGS]
    base += ["--output-path", str(tmp_path / "o.json")]
    bad = subprocess.run(
        [*base, "--fp8-format", "hybrid", "--fp8-recipe", "delayed"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "invalid choice: 'delayed'" in bad.stderr
    alone = subprocess.run(
        [*base, "--fp8-recipe", "tensorwise"], capture_output=True, text=True, timeout=60
    )
    assert alone.returncode == 2 and "--fp8-recipe needs --fp8-format" in alone.stderr
