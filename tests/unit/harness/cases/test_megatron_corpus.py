"""Megatron-LM's 32 vendored folders: every one loads as is, and each either runs on a CPU
against a cpu golden recorded with its stand-in, or is skipped naming what it needs."""

import json
from pathlib import Path

import pytest

from logitsmatch.harness.cases import CaseTarget, load_all, load_case

ROOT = Path(__file__).parents[4]
CORPUS = load_all(ROOT / "tests" / "data" / "megatron", golden_root=ROOT / "golden")
RUNS = [case for case in CORPUS if not case.blocked]
# 128 prompts x 128 tokens x 3 trials of the stand-in (its ShareGPT prompts are a shipped
# stand-in): 23 and 28 min to record on 2 cores, hence their longer deadline
LONG = [
    "gpt_dynamic_inference_tp1_pp1_583m_async_sched",
    "gpt_dynamic_inference_tp1_pp1_583m_logitsmatch",
]


def test_all_32_folders_load():
    assert len(CORPUS) == 32


def test_what_does_not_run_here_says_why():
    blocked = [case for case in CORPUS if case.blocked]
    assert [(c.name, c.blocked[0]) for c in blocked] == [
        (
            "gpt_dynamic_inference_tp1_pp1_583m_cuda_graphs_validation",
            "no MODEL_ARGS: upstream runs this folder with its own scripts, not an engine",
        )
    ]
    assert {expected for expected, _ in blocked[0].platforms.values()} == {"skip"}
    assert len(RUNS) == 31
    assert [c.name for c in RUNS if CaseTarget(c, "cpu").expected != "pass"] == []
    for name in LONG:
        (case,) = [c for c in RUNS if c.name == name]
        assert case.prompt_file is not None and case.prompt_file.uses_stand_in({})
        assert len(case.load_prompts({})) == 128  # --prompt-file-num-truncate of the 256
        assert case.deadline_s == 3600


@pytest.mark.parametrize("case", RUNS, ids=lambda c: c.name)
def test_each_folder_that_runs_has_a_cpu_golden_of_its_stand_in(case):
    target = CaseTarget(case, "cpu")
    assert target.expected == "pass", target.reason
    golden = json.loads(target.golden_path.read_text())
    assert golden["_provenance"]["model"] == case.binding.run_model
    assert case.binding.stand_in and "gpt-583m" in case.binding.run_model
    assert "+dirty" not in golden["_provenance"]["engine_commit"]


def test_a_corpus_folder_finds_its_cpu_golden_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = ROOT / "tests" / "data" / "megatron" / RUNS[0].name
    case = load_case(folder)
    assert CaseTarget(case, "cpu").golden_path == ROOT / "golden" / "cpu" / f"{case.name}.json"
    assert CaseTarget(case, "cpu").expected == "pass"  # recorded: not "no cpu golden yet"
