"""A builtin-engine case's values are checked at load by the engine's own parser: a bad one
names the file, the MODEL_ARGS flag and the value before any engine starts."""

from pathlib import Path

import pytest

from logitsmatch.harness.cases import CaseError, load_case

SHIPPED = Path(__file__).resolve().parents[4] / "cases"
BASE = SHIPPED / "gpt_dynamic_inference_tp1_pp1_dp1_smollm2_logitsmatch_stop_strings.yaml"


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = BASE.read_text()
    assert old in text
    path = tmp_path / "cases" / "variant.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "--num-tokens-to-generate: 16",
            "--num-tokens-to-generate: -1",
            "MODEL_ARGS.--num-tokens-to-generate: -1: num_tokens_to_generate must be an int >= 1",
        ),
        ("--top_k: 1", "--top_k: x", "MODEL_ARGS.--top_k: 'x': invalid int value: 'x'"),
        (
            "--top_k: 1",
            "--top_k: 1\n  --top_p: 0.5",
            "MODEL_ARGS.--top_p: 0.5: top_p=0.5 has no effect with top_k=1",
        ),
        (
            "--top_k: 1",
            "--top_k: 1\n  --model: smollm2-135",
            "MODEL_ARGS.--model: 'smollm2-135' is not a known model; did you mean 'smollm2-135m'?",
        ),
        (
            "--top_k: 1",
            "--top_k: 1\n  --tensor-model-parallel-size: 0",
            "MODEL_ARGS.--tensor-model-parallel-size",
        ),
    ],
)
def test_a_value_the_engine_refuses_fails_at_load_naming_file_flag_and_value(
    tmp_path, old, new, message
):
    path = _variant(tmp_path, old, new)
    with pytest.raises(CaseError) as info:
        load_case(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_the_shipped_case_itself_loads():
    assert load_case(BASE).engine_args["--num-tokens-to-generate"] == 16


def test_peak_memory_is_refused_where_the_zmq_output_cannot_report_it(tmp_path):
    zmq = SHIPPED / "gpt_dynamic_inference_tp2_pp2_dp2_tiny_logitsmatch_zmq.yaml"
    text = zmq.read_text()
    listed = "METRICS: [generated_tokens, logprobs]"
    assert listed in text
    path = tmp_path / "zmq_memory.yaml"
    path.write_text(text.replace(listed, "METRICS: [generated_tokens, mem-max-allocated-bytes]"))
    with pytest.raises(CaseError, match="no mem-max-allocated-bytes with DRIVER zmq"):
        load_case(path)
