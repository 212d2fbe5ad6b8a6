"""The one ${VAR} expander and the platform names a case file may list."""

import shutil
from pathlib import Path

import pytest

from logitsmatch.harness.cases import CaseError, CaseTarget, load_case
from logitsmatch.harness.cases.fields import expand
from logitsmatch.harness.cases.flags import run_environ
from logitsmatch.harness.run.session import EngineSession

MEGATRON = (
    Path(__file__).parents[3]
    / "data"
    / "megatron"
    / "gpt_dynamic_inference_tp1_pp8_dp1_583m_logitsmatch_zmq"
)
SOURCE = Path("cases/c.yaml")


def test_expand_replaces_every_variable_and_names_a_missing_one():
    assert expand("${A}/x/${B}", {"A": "a", "B": "b"}, source=SOURCE, field="F") == "a/x/b"
    assert expand("no vars, $A", {}, source=SOURCE, field="F") == "no vars, $A"
    with pytest.raises(CaseError) as error:
        expand("${A}/${B}", {"A": "a"}, source=SOURCE, field="MODEL_ARGS.--load")
    assert str(error.value) == (
        "cases/c.yaml: MODEL_ARGS.--load: ${B} is not set in the environment "
        "(set it, or in the case's ENV_VARS)"
    )
    with pytest.raises(CaseError, match=r"c\.yaml: K: expected a path whose \$\{B\} is set"):
        expand("${B}/p", {}, source=SOURCE, field="K", what="a path")


def _case(tmp_path, extra=""):
    path = tmp_path / "cases" / "c.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        'PROMPTS: ["hi"]\nPLATFORMS: {cpu: {expected: pass}}\nDRIVER: in-process\n' + extra
    )
    return load_case(path)


def test_env_vars_expand_in_order_and_an_unset_one_is_an_error(tmp_path):
    case = _case(tmp_path, "ENV_VARS:\n  A: ${ROOT_X}/a\n  B: ${A}/b\n  C: ${NOPE}\n")
    with pytest.raises(CaseError, match=r"c\.yaml: ENV_VARS\.C: \$\{NOPE\} is not set"):
        run_environ(case, {"ROOT_X": "/r"})
    env = run_environ(case, {"ROOT_X": "/r", "NOPE": "n"})
    assert (env["A"], env["B"], env["C"]) == ("/r/a", "/r/a/b", "n")


def test_an_engine_command_with_an_unset_variable_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("CKPT", raising=False)
    extra = 'ENGINE: "run gpt.py {model_args} {output_path}"\nMODEL_ARGS: {--load: "${CKPT}/m"}\n'
    case = _case(tmp_path, extra)
    session = EngineSession.start(CaseTarget(case, "cpu"), tmp_path / "runs", echo=lambda _: None)
    with pytest.raises(CaseError, match=r"c\.yaml: ENGINE/MODEL_ARGS: \$\{CKPT\} is not set"):
        session.run_case("repeat-1")


def test_a_case_file_lists_only_platforms_of_the_table(tmp_path):
    path = tmp_path / "cases" / "c.yaml"
    path.parent.mkdir()
    path.write_text('PROMPTS: ["hi"]\nDRIVER: zmq\nPLATFORMS: {dgx_h10: {expected: pass}}\n')
    with pytest.raises(CaseError) as error:
        load_case(path)
    assert str(error.value).startswith(
        f"{path}: PLATFORMS.dgx_h10: expected a platform of the platform table "
        "(cpu or dgx_h100), got 'dgx_h10'; did you mean 'dgx_h100'?"
    )


def test_a_megatron_folder_keeps_the_platforms_of_its_goldens(tmp_path):
    folder = tmp_path / MEGATRON.name
    shutil.copytree(MEGATRON, folder)
    (folder / "golden_values_lts_dgx_a100.json").write_text(
        (folder / "golden_values_dev_dgx_h100.json").read_text()
    )
    platforms = load_case(folder, golden_root=tmp_path / "golden").platforms
    # Its goldens' platforms, and cpu, whose golden goes where ours go (none recorded here).
    assert {p: expected for p, (expected, _) in platforms.items()} == {
        "cpu": "not_recorded",
        "dgx_a100": "pass",
        "dgx_h100": "pass",
    }
    assert "nox -s record -- " + MEGATRON.name + " --platform cpu" in platforms["cpu"][1]
    (tmp_path / "golden" / "cpu").mkdir(parents=True)
    (tmp_path / "golden" / "cpu" / f"{MEGATRON.name}.json").write_text("{}")
    assert load_case(folder, golden_root=tmp_path / "golden").platforms["cpu"][0] == "pass"
