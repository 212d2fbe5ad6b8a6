"""DRIVER is a case field, never a name suffix; NPROC is honoured or refused, never lost."""

import shutil
from pathlib import Path

import pytest

from logitsmatch.harness.cases import CaseError, Driver, load_case
from logitsmatch.harness.cases.flags import mode_flags

ROOT = Path(__file__).resolve().parents[4]
MEGATRON = (
    ROOT / "tests" / "data" / "megatron" / "gpt_dynamic_inference_tp1_pp8_dp1_583m_logitsmatch_zmq"
)
REFERENCE = ROOT / "cases" / "gpt_dynamic_inference_tp1_pp8_dp1_smollm2_logitsmatch_zmq.yaml"
CHUNKED = (
    ROOT / "cases" / "gpt_dynamic_inference_tp1_pp1_dp1_smollm2_logitsmatch_chunked_prefill.yaml"
)
BASE = 'PROMPTS: ["hello"]\nPLATFORMS: {cpu: {expected: pass}}\n'


def write(tmp_path: Path, text: str, name: str = "c") -> Path:
    path = tmp_path / "cases" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(("value", "driver"), [("in-process", Driver.IN_PROCESS), ("zmq", "zmq")])
def test_the_accepted_drivers(tmp_path, value, driver):
    case = load_case(write(tmp_path, BASE + f"DRIVER: {value}\n"))
    assert case.driver == driver
    assert bool(mode_flags(case)) == (driver == "zmq")


def test_our_case_files_must_say_their_driver(tmp_path):
    # Even one whose name ends in _zmq: only a Megatron folder goes by its name.
    with pytest.raises(
        CaseError, match=r"/c_zmq\.yaml: DRIVER: missing: expected in-process or zmq"
    ):
        load_case(write(tmp_path, BASE, "c_zmq"))


@pytest.mark.parametrize(
    ("value", "nearest"), [("zmg", "zmq"), ("inprocess", "in-process"), ("ZMQ", "zmq")]
)
def test_a_typo_names_file_field_value_and_the_nearest_driver(tmp_path, value, nearest):
    with pytest.raises(CaseError) as error:
        load_case(write(tmp_path, BASE + f"DRIVER: {value}\n"))
    assert str(error.value) == (
        f"{tmp_path / 'cases' / 'c.yaml'}: DRIVER: expected in-process or zmq, got {value!r}; "
        f"did you mean {nearest!r}?"
    )


def test_a_megatron_folder_is_driven_as_its_name_says(tmp_path):
    assert load_case(MEGATRON).driver is Driver.ZMQ
    renamed = tmp_path / "gpt_dynamic_inference_tp1_pp8_dp1_583m_logitsmatch"
    shutil.copytree(MEGATRON, renamed)
    assert load_case(renamed).driver is Driver.IN_PROCESS


def test_renaming_one_of_our_cases_keeps_its_driver(tmp_path):
    for shipped, other_name, driver in (
        (REFERENCE, "reference_renamed", Driver.ZMQ),
        (CHUNKED, "chunked_prefill_zmq", Driver.IN_PROCESS),
    ):
        original = load_case(shipped)
        renamed = load_case(write(tmp_path, shipped.read_text(), other_name))
        assert original.driver is renamed.driver is driver
        assert mode_flags(original) == mode_flags(renamed)


def test_every_shipped_case_says_its_driver():
    for path in sorted((ROOT / "cases").glob("*.yaml")):
        assert "\nDRIVER: " in path.read_text(), path


def test_nproc_disagreeing_with_the_builtin_layout_is_refused(tmp_path):
    layout = "MODEL_ARGS: {--tensor-model-parallel-size: 2, --data-parallel-size: 2}\n"
    path = write(tmp_path, BASE + layout + "DRIVER: in-process\nNPROC: 8\n")
    with pytest.raises(CaseError) as error:
        load_case(path)
    message = str(error.value)
    assert message.startswith(f"{path}: NPROC: expected tp × pp × dp = 2 × 1 × 2 = 4 ranks")
    assert message.endswith(", got 8")
    # Without --data-parallel-size the builtin engine runs dp 1: NPROC does not make replicas.
    alone = write(tmp_path, BASE + "DRIVER: in-process\nNPROC: 8\n", "alone")
    with pytest.raises(CaseError, match=r"NPROC: expected tp × pp × dp = 1 × 1 × 1 = 1 ranks"):
        load_case(alone)


def test_nproc_agreeing_with_the_builtin_layout_is_accepted(tmp_path):
    layout = "MODEL_ARGS: {--tensor-model-parallel-size: 2, --data-parallel-size: 2}\n"
    case = load_case(write(tmp_path, BASE + layout + "DRIVER: in-process\nNPROC: 4\n"))
    assert (case.tensor_parallel, case.data_parallel, case.nproc) == (2, 2, 4)


def test_an_engine_command_gets_nproc_as_its_placeholder(tmp_path):
    engine = 'ENGINE: "torchrun --nproc-per-node {nproc} run.py --dp {dp} {output_path}"\n'
    layout = "MODEL_ARGS: {--tensor-model-parallel-size: 2}\n"
    case = load_case(write(tmp_path, BASE + layout + engine + "DRIVER: in-process\nNPROC: 8\n"))
    assert case.engine_argv(output_path="o.json") == [
        "torchrun",
        "--nproc-per-node",
        "8",
        "run.py",
        "--dp",
        "4",
        "o.json",
    ]
