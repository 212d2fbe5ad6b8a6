"""Megatron-LM's 32 vendored folders: every one loads as is, and each either runs on a CPU
against a cpu golden recorded with its stand-in, or is skipped naming what it needs."""

import json
from collections import Counter
from pathlib import Path

import pytest

from logitsmatch.harness.cases import CaseTarget, load_all
from logitsmatch.harness.cases.flag_table import ARRIVALS_PER_STEP

ROOT = Path(__file__).parents[4]
CORPUS = load_all(ROOT / "tests" / "data" / "megatron", golden_root=ROOT / "golden")
RUNS = [case for case in CORPUS if not case.blocked]


def test_all_32_folders_load():
    assert len(CORPUS) == 32


def test_what_does_not_run_here_names_the_feature_it_needs():
    reasons = Counter()
    for case in CORPUS:
        if case.blocked:
            first = case.blocked[0]
            reasons[ARRIVALS_PER_STEP if ARRIVALS_PER_STEP in first else first] += 1
            assert {expected for expected, _ in case.platforms.values()} == {"skip"}
    assert reasons == {
        ARRIVALS_PER_STEP: 2,
        "no MODEL_ARGS: upstream runs this folder with its own scripts, not an engine": 1,
    }
    assert len(RUNS) == 29


@pytest.mark.parametrize("case", RUNS, ids=lambda c: c.name)
def test_each_folder_that_runs_has_a_cpu_golden_of_its_stand_in(case):
    target = CaseTarget(case, "cpu")
    assert target.expected == "pass", target.reason
    golden = json.loads(target.golden_path.read_text())
    assert golden["_provenance"]["model"] == case.binding.run_model
    assert case.binding.stand_in and "gpt-583m" in case.binding.run_model
    assert "+dirty" not in golden["_provenance"]["engine_commit"]
