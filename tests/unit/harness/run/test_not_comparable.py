"""A golden recorded with another model is never compared: the verdict is not comparable."""

import json
import shutil
from pathlib import Path

from logitsmatch.harness.cases import CaseTarget, load_case
from logitsmatch.harness.reports import OutcomeStatus
from logitsmatch.harness.run import Machine, run_target

FOLDER = (
    Path(__file__).parents[3]
    / "data"
    / "megatron"
    / "gpt_dynamic_inference_tp1_pp8_dp1_583m_logitsmatch_zmq"
)
GOLDEN = {"0": {"input_prompt": "a", "generated_tokens": [1], "logprobs": [-1.0]}}


def test_a_megatron_golden_of_the_checkpoint_is_not_compared_with_the_stand_in(tmp_path):
    case = load_case(FOLDER, golden_root=tmp_path)
    h100 = Machine("dgx_h100", "NVIDIA H100", 8)
    result = run_target(CaseTarget(case, "dgx_h100"), h100, runs_root=tmp_path / "runs")
    outcome = result.outcome
    assert outcome.status == OutcomeStatus.NOT_COMPARABLE and not outcome.ok
    assert result.run_dir is None  # no engine started
    assert outcome.reason.startswith(
        "not comparable: golden from checkpoint ${CHECKPOINT_LOAD_PATH}/model/mcore_mistral/"
        "nemo_minitron-0.5b/v1/ with tokenizer TikTokenizer"
    )
    assert "this run stand-in gpt-583m (24 layers" in outcome.reason
    assert any(note.startswith("model: stand-in gpt-583m") for note in outcome.notes)


def test_our_golden_of_another_model_is_not_compared(tmp_path):
    folder = tmp_path / FOLDER.name
    shutil.copytree(FOLDER, folder)
    golden = tmp_path / "golden" / "cpu" / f"{FOLDER.name}.json"
    golden.parent.mkdir(parents=True)
    golden.write_text(json.dumps({**GOLDEN, "_provenance": {"model": "smollm2-135m"}}))
    case = load_case(folder, golden_root=tmp_path / "golden")
    cpu = Machine("cpu", "Some CPU", 0)
    outcome = run_target(CaseTarget(case, "cpu"), cpu, runs_root=tmp_path / "runs").outcome
    assert outcome.status == OutcomeStatus.NOT_COMPARABLE
    assert "golden from smollm2-135m, this run stand-in gpt-583m" in outcome.reason
    assert f"nox -s record -- {FOLDER.name} --platform cpu" in outcome.reason
