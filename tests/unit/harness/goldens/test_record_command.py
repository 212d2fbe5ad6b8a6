"""`logitsmatch record` writes nothing that `check` would not trust."""

import json
import shlex
import subprocess
import sys

import pytest

from logitsmatch.harness.goldens import record as record_module
from logitsmatch.harness.goldens.provenance import dirty_engine_files
from logitsmatch.harness.goldens.record import record_main
from logitsmatch.harness.run import Machine

CPU = Machine("cpu", "Some CPU", 0)
PROMPTS = ["hello", "world"]


def _request(prompt: str, tokens: list[int]) -> dict:
    return {
        "input_prompt": prompt,
        "generated_text": " x",
        "generated_tokens": tokens,
        "logprobs": [-1.0] + [-0.5] * len(tokens),
    }


GOOD = {"0": _request("hello", [5, 6]), "1": _request("world", [7])}
# An engine that writes outputs[k] on its k-th run (the last one after that): a counter file.
ENGINE = """
import json, pathlib, sys
outputs = json.loads(pathlib.Path(sys.argv[1]).read_text())
counter = pathlib.Path(sys.argv[1] + ".runs")
k = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(k + 1))
pathlib.Path(sys.argv[2]).write_text(json.dumps(outputs[min(k, len(outputs) - 1)]))
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOGITSMATCH_RUN_DIR", raising=False)
    (tmp_path / "cases").mkdir()
    (tmp_path / "engine.py").write_text(ENGINE)
    return tmp_path


def _case(project, outputs: list[dict], extra: str = "") -> str:
    (project / "outputs.json").write_text(json.dumps(outputs))
    engine = shlex.join([sys.executable, str(project / "engine.py"), str(project / "outputs.json")])
    (project / "cases" / "c.yaml").write_text(
        f"ENGINE: {json.dumps(engine + ' {output_path}')}\nDRIVER: in-process\n"
        f"PROMPTS: {json.dumps(PROMPTS)}\nPLATFORMS:\n  cpu: {{expected: pass}}\n{extra}"
    )
    return "c"


def _refused(project, capsys, outputs, extra="") -> str:
    assert record_main([_case(project, outputs, extra)], machine=CPU) == 1
    assert not (project / "golden" / "cpu" / "c.json").exists()
    return capsys.readouterr().err


def test_a_complete_run_is_recorded_with_hashed_provenance(project):
    assert record_main([_case(project, [GOOD])], machine=CPU) == 0
    golden = json.loads((project / "golden" / "cpu" / "c.json").read_text())
    provenance = golden["_provenance"]
    assert len(provenance["case_sha256"]) == 64
    assert provenance["engine_source"]["files"]["engine/engine.py"]
    assert [k for k in golden if k != "_provenance"] == ["0", "1"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("1"), "the run lacks '1' of the case's 2 requests"),
        (lambda d: d.update({"2": _request("x", [1])}), "requests the case does not ask for: '2'"),
        (lambda d: d["1"].pop("logprobs"), "request '1': METRICS lists logprobs"),
        (lambda d: d["1"].update(logprobs=[]), "request '1': empty logprobs"),
        (lambda d: d["0"].update(generated_tokens=[]), "request '0': no generated_tokens"),
        (
            lambda d: d["1"].update(input_prompt="hello"),
            "request '1': input_prompt 'hello' is not the case's prompt 1: 'world'",
        ),
    ],
)
def test_an_incomplete_run_is_refused_and_nothing_is_written(project, capsys, change, message):
    broken = json.loads(json.dumps(GOOD))
    change(broken)
    assert message in _refused(project, capsys, [broken])


def test_a_deterministic_case_runs_n_repeat_times_and_refuses_differing_repeats(project, capsys):
    drifted = json.loads(json.dumps(GOOD))
    drifted["1"]["logprobs"][1] = -0.5000001
    err = _refused(project, capsys, [GOOD, drifted], "N_REPEAT: 2\nDETERMINISTIC: true\n")
    assert "repeat 2 of 2 differs from repeat 1" in err
    assert "the case is DETERMINISTIC" in err and "'1'" in err
    assert (project / "outputs.json.runs").read_text() == "2"


def test_repeats_within_tolerance_record_when_not_deterministic(project):
    drifted = json.loads(json.dumps(GOOD))
    drifted["1"]["logprobs"][1] = -0.5000001
    case = _case(project, [GOOD, drifted], "N_REPEAT: 2\n")
    assert record_main([case], machine=CPU) == 0


def test_uncommitted_engine_changes_are_refused_unless_allowed(project, capsys, monkeypatch):
    (project / "cases" / "b.yaml").write_text(
        "MODEL_ARGS:\n  --model: tiny\nDRIVER: in-process\nPROMPTS: [hi]\n"
        "PLATFORMS:\n  cpu: {expected: pass}\n"
    )
    monkeypatch.setattr(record_module, "dirty_engine_files", lambda: ["src/x/engine/a.py"])
    assert record_main(["b"], machine=CPU) == 2
    err = capsys.readouterr().err
    assert "the engine's source has uncommitted changes (src/x/engine/a.py)" in err
    assert "--allow-dirty" in err
    assert not (project / "runs").exists()  # refused before any engine started


def test_dirty_engine_files_lists_modified_and_new_engine_files_only(tmp_path):
    git = ["git", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True, timeout=30)
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "a.py").write_text("x = 1\n")
    (tmp_path / "harness.py").write_text("y = 1\n")
    subprocess.run([*git, "add", "."], check=True, timeout=30)
    subprocess.run(
        [*git, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
        check=True,
        timeout=30,
    )
    assert dirty_engine_files(tmp_path) == []
    (tmp_path / "engine" / "a.py").write_text("x = 2\n")
    (tmp_path / "engine" / "b.py").write_text("")
    (tmp_path / "harness.py").write_text("y = 2\n")
    assert dirty_engine_files(tmp_path) == ["engine/a.py", "engine/b.py"]
