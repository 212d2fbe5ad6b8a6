"""Arrival patterns in the engine's own loop (real processes; tp2 with gloo): in
--batch-invariant mode no pattern changes a number, and the run log holds the schedule."""

import subprocess
import sys

import pytest
from conftest import assert_same, generate

PATTERNS = {
    "per-step-1": ["--incoming-requests-per-step", "1"],
    "poisson": ["--incoming-requests-per-sec", "8", "--seed", "3"],
    "poisson-tp2": ["--incoming-requests-per-sec", "8", "--tensor-model-parallel-size", "2"],
}


@pytest.fixture(scope="module")
def at_once(workdir):
    return generate(workdir, "arrive-at-once", "--batch-invariant", model="tiny", tokens=8)


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_arrivals_change_no_number(pattern, workdir, at_once):
    run = generate(
        workdir,
        f"arrive-{pattern}",
        "--batch-invariant",
        *PATTERNS[pattern],
        model="tiny",
        tokens=8,
    )
    assert_same(at_once, run, tol=0.0)
    if "tp2" in pattern:  # each rank holds half of every sharded weight and KV head
        assert run["mem-max-allocated-bytes"] < at_once["mem-max-allocated-bytes"]


def test_the_schedule_is_logged_and_a_hopeless_rate_is_refused(tmp_path):
    base = [sys.executable, "-m", "logitsmatch.cli", "generate", "--model", "tiny"]
    base += ["--prompts", "a", "b", "--num-tokens-to-generate", "2"]
    ok = subprocess.run(
        [*base, "--incoming-requests-per-sec", "50", "--output-path", str(tmp_path / "o.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "arrivals: Poisson 50/s, seed 0: request i at [" in ok.stderr
    slow = subprocess.run(
        [*base, "--incoming-requests-per-sec", "0.001", "--output-path", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert slow.returncode == 2
    assert "--incoming-requests-per-sec 0.001: the last of 2 requests would arrive" in slow.stderr
    assert not (tmp_path / "x.json").exists()
