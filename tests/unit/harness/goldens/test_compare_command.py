"""``logitsmatch compare``: exit 0 only when every request passed; 2 on bad input."""

import copy
import json
from pathlib import Path

from logitsmatch.harness.goldens.compare import compare_main

MEGATRON = (
    Path(__file__).parents[3]
    / "data"
    / "megatron"
    / "gpt_dynamic_inference_tp1_pp8_dp1_583m_logitsmatch_zmq"
)
GOLDEN = MEGATRON / "golden_values_dev_dgx_h100.json"


def run_copy(tmp_path: Path, mutate=None) -> Path:
    doc = json.loads(GOLDEN.read_text())
    if mutate:
        mutate(doc)
    path = tmp_path / "current.json"
    path.write_text(json.dumps(doc))
    return path


def test_identical_run_exits_0(tmp_path, capsys):
    assert compare_main([str(GOLDEN), str(run_copy(tmp_path)), "--case", str(MEGATRON)]) == 0
    assert "passed" in capsys.readouterr().out


def test_changed_token_exits_1_and_names_case_platform_and_commands(tmp_path, capsys):
    def change(doc):
        doc["0"]["generated_tokens"][3] = 1

    current = run_copy(tmp_path, change)
    assert (
        compare_main(
            [
                str(GOLDEN),
                str(current),
                "--case",
                str(MEGATRON),
                "--report-dir",
                str(tmp_path / "rep"),
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    name = MEGATRON.name
    assert f"FAILED {name}@dgx_h100" in out
    assert "differ at index 3: golden 1395 vs current 1" in out
    assert f"nox -s record -- {name} --platform dgx_h100" in out
    assert (tmp_path / "rep" / "junit.xml").exists()
    assert (tmp_path / "rep" / "plots" / f"{name}@dgx_h100.png").stat().st_size > 10_000


def test_case_metrics_apply(tmp_path):
    def change_text(doc):
        doc["0"]["generated_text"] = "different"

    current = run_copy(tmp_path, change_text)
    assert compare_main([str(GOLDEN), str(current), "--case", str(MEGATRON)]) == 0
    assert compare_main([str(GOLDEN), str(current)]) == 1  # default metrics include the text


def test_bad_input_exits_2_with_the_file_named(tmp_path, capsys):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    assert compare_main([str(GOLDEN), str(empty)]) == 2
    assert f"{empty}: the run output file is empty" in capsys.readouterr().err
    assert compare_main([str(GOLDEN), str(run_copy(tmp_path)), "--case", "nope"]) == 2
    assert "--case nope: no such case" in capsys.readouterr().err


def test_nan_in_the_run_fails_but_is_not_an_input_error(tmp_path):
    def nan(doc):
        doc["0"]["logprobs"][0] = float("nan")

    golden = tmp_path / "golden" / "cpu" / "c.json"
    golden.parent.mkdir(parents=True)
    golden.write_text(json.dumps(copy.deepcopy(json.loads(GOLDEN.read_text()))))
    assert compare_main([str(golden), str(run_copy(tmp_path, nan))]) == 1


def test_two_recordings_that_differ_name_what_their_machines_differed_in(tmp_path, capsys):
    """A golden against another recording (e.g. another platform's golden): the failure says
    which versions and devices differed between the two."""
    ours = tmp_path / "golden" / "dgx_h100" / "g.json"
    ours.parent.mkdir(parents=True)
    doc = json.loads(GOLDEN.read_text())
    provenance = {"engine_commit": "a" * 40, "packages": {"torch": "2.11.0"}, "device_name": "H100"}
    ours.write_text(json.dumps({"_provenance": provenance, **doc}))

    def change(other):
        other["0"]["generated_tokens"][3] = 1
        packages = {"torch": "2.13.0+cpu"}
        other["_provenance"] = {
            "engine_commit": "b" * 40,
            "packages": packages,
            "device_name": "Xeon",
        }

    assert compare_main([str(ours), str(run_copy(tmp_path, change))]) == 1
    out = capsys.readouterr().out
    assert (
        "changed since the golden was recorded: engine commit aaaaaaaaaaaa -> bbbbbbbbbbbb, "
        "torch 2.11.0 -> 2.13.0+cpu, device H100 -> Xeon"
    ) in out
