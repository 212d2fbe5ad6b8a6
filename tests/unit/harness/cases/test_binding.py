"""The model binding: --model, a stand-in of a folder's architecture, or its checkpoint."""

from pathlib import Path

import pytest

from logitsmatch.harness.cases import CaseError
from logitsmatch.harness.cases.binding import bind_model

SOURCE = Path("folder/model_config.yaml")
MEGATRON_583M = {
    "--num-layers": 24,
    "--hidden-size": 1152,
    "--num-attention-heads": 16,
    "--tokenizer-type": "TikTokenizer",
    "--tokenizer-model": "${CHECKPOINT_LOAD_PATH}/v1/vocab.json",
    "--load": "${CHECKPOINT_LOAD_PATH}/v1",
}


def test_a_named_model_runs_as_named():
    binding = bind_model(SOURCE, {"--model": "tiny", "--synthetic-seed": 7}, {})
    assert binding.engine_args == {"--model": "tiny", "--synthetic-seed": 7}
    assert binding.run_model == "tiny (synthetic seed 7)" and not binding.stand_in
    assert binding.golden_model is None
    assert bind_model(SOURCE, {}, {}).run_model == "smollm2-135m"


def test_an_absent_checkpoint_runs_the_stand_in_of_exactly_that_architecture():
    binding = bind_model(SOURCE, MEGATRON_583M, {})
    assert binding.stand_in and binding.engine_args == {"--model": "gpt-583m"}
    assert "24 layers, hidden 1152, 16 heads, FFN 4608" in binding.run_model
    assert "smollm2-135m's tokenizer" in binding.run_model
    assert binding.golden_model == (
        "checkpoint ${CHECKPOINT_LOAD_PATH}/v1 with tokenizer TikTokenizer "
        "${CHECKPOINT_LOAD_PATH}/v1/vocab.json"
    )
    # A golden of the checkpoint never compares with the stand-in's run; ours does.
    assert not binding.comparable_with(binding.golden_model)
    assert binding.comparable_with(binding.run_model) and binding.comparable_with(None)


def test_an_architecture_no_preset_has_is_refused_naming_the_presets():
    with pytest.raises(
        CaseError,
        match=r"no stand-in model has the architecture .* = "
        r"\(24, 1152, 16, 16, 1000\); the presets are gpt-583m",
    ):
        bind_model(SOURCE, {**MEGATRON_583M, "--ffn-hidden-size": 1000}, {})
    with pytest.raises(CaseError, match=r"MODEL_ARGS\.--hidden-size: missing"):
        bind_model(SOURCE, {"--num-layers": 24}, {})
    with pytest.raises(CaseError, match="already named by --model"):
        bind_model(SOURCE, {"--model": "tiny", "--num-layers": 24}, {})


def test_a_checkpoint_the_engine_cannot_load_is_refused_by_name(tmp_path):
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "common.pt").write_text("x")
    (tmp_path / "v1" / "metadata.json").write_text("{}")
    with pytest.raises(
        CaseError,
        match=r"MODEL_ARGS.--load: .*v1 exists, but .* it cannot load "
        r"common.pt, metadata.json",
    ):
        bind_model(SOURCE, MEGATRON_583M, {"CHECKPOINT_LOAD_PATH": str(tmp_path)})


def test_an_hf_checkpoint_is_run_itself(tmp_path):
    folder = tmp_path / "v1"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (folder / name).write_text("{}")
    binding = bind_model(SOURCE, MEGATRON_583M, {"CHECKPOINT_LOAD_PATH": str(tmp_path)})
    assert binding.engine_args == {"--model": str(folder)} and not binding.stand_in
    # The folder's own checkpoint: its upstream goldens compare with this run.
    assert binding.comparable_with(binding.golden_model)
