"""`logitsmatch check`: exit codes, skips with reasons, where the combined reports go."""

import json
import shlex
import signal
import subprocess
import sys
import time

import pytest

from logitsmatch.harness.cases.platforms import PLATFORMS, SCRATCH
from logitsmatch.harness.goldens.record import record_main
from logitsmatch.harness.run import Machine
from logitsmatch.harness.run.check import check_main

CPU = Machine("cpu", "Some CPU", 0)
GOLDEN = {
    "0": {
        "input_prompt": "hello",
        "generated_text": " a",
        "generated_tokens": [5],
        "logprobs": [-1.0, -0.5],
    }
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """cases/good (its engine writes the golden), cases/bad (a changed token), goldens."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOGITSMATCH_RUN_DIR", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    bad = json.loads(json.dumps(GOLDEN))
    bad["0"]["generated_tokens"] = [6]
    for name, output in (("good", GOLDEN), ("bad", bad)):
        (tmp_path / f"{name}.json").write_text(json.dumps(output))
        copy = f"import shutil, sys; shutil.copy({str(tmp_path / name)!r} + '.json', sys.argv[1])"
        engine = shlex.join([sys.executable, "-c", copy]) + " {output_path}"
        case = tmp_path / "cases" / f"{name}.yaml"
        case.parent.mkdir(exist_ok=True)
        case.write_text(
            f"ENGINE: {json.dumps(engine)}\nDRIVER: in-process\nPROMPTS: [hello]\n"
            "PLATFORMS:\n  cpu: {expected: pass}\n  dgx_h100: {expected: pass}\n"
        )
        golden = tmp_path / "golden" / "cpu" / f"{name}.json"
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(GOLDEN))
    return tmp_path


def test_usage_errors(project, capsys):
    assert check_main([], machine=CPU) == 2
    assert check_main(["good", "--all"], machine=CPU) == 2
    assert check_main(["nosuch"], machine=CPU) == 2
    assert "no case 'nosuch' in cases/ (known: bad, good)" in capsys.readouterr().err


def test_one_passing_target_reports_where_ci_looks(project):
    assert check_main(["good"], machine=CPU) == 0
    junit = (project / "runs" / "good@cpu" / "junit.xml").read_text()
    assert 'tests="1" failures="0" errors="0" skipped="0"' in junit


def test_a_run_where_every_target_skipped_fails_unless_allowed(project, capsys):
    assert check_main(["good", "--platform", "dgx_h100"], machine=CPU) == 1
    assert "no target ran (1 skipped, reasons above)" in capsys.readouterr().err
    junit = (project / "runs" / "good@dgx_h100" / "junit.xml").read_text()
    assert '<skipped message="this machine is cpu (Some CPU), not dgx_h100"' in junit
    assert check_main(["good", "--platform", "dgx_h100", "--allow-empty"], machine=CPU) == 0


def test_an_unknown_platform_is_an_error_naming_the_nearest(project, capsys):
    assert check_main(["good", "--platform", "cpuu"], machine=CPU) == 2
    err = capsys.readouterr().err
    assert "--platform 'cpuu' is not a known platform; did you mean 'cpu'?" in err
    assert "known: cpu, dgx_h100" in err
    assert not (project / "runs").exists()  # nothing ran, no report pretends otherwise


def test_all_fails_when_one_fails_and_writes_one_combined_summary(project, capsys):
    assert check_main(["--all"], machine=CPU) == 1
    (summary,) = (project / "runs" / "all@cpu").glob("*/summary.md")
    text = summary.read_text()
    assert "1 passed, 1 failed" in text and "`good@cpu`" in text and "`bad@cpu`" in text
    assert "first diverging token at generated position 0" in text
    assert "re-record: nox -s record -- bad --platform cpu" in text
    err = capsys.readouterr().err
    assert "logitsmatch: bad@cpu: FAILED request '0' generated_tokens: differ at index 0" in err
    assert " (run folder runs/bad@cpu/" in err


def test_all_on_a_platform_no_case_lists_is_an_error(project, capsys):
    for case in ("good", "bad"):
        path = project / "cases" / f"{case}.yaml"
        path.write_text(path.read_text().replace("  dgx_h100: {expected: pass}\n", ""))
    assert check_main(["--all", "--platform", "dgx_h100"], machine=CPU) == 1
    assert "no case in cases/ runs on platform 'dgx_h100'" in capsys.readouterr().err


def test_a_case_that_does_not_load_is_named_and_the_others_still_run(project, capsys):
    (project / "cases" / "typo.yaml").write_text(
        "MODEL_ARGS: {--top-kk: 1}\nDRIVER: in-process\nPROMPTS: [a]\nPLATFORMS: {cpu: {}}\n"
    )
    broken = project / "cases" / "broken"
    broken.mkdir()
    (broken / "model_config.yaml").write_text("MODEL_ARGS: [unclosed\n")
    assert check_main(["--all"], machine=CPU) == 2
    err = capsys.readouterr().err
    assert "typo.yaml: MODEL_ARGS.--top-kk: not a known flag; did you mean '--top-k'?" in err
    assert "broken/model_config.yaml: not valid YAML" in err
    assert "good@cpu: PASSED" in err and "bad@cpu: FAILED" in err


def test_dry_run_validates_and_plans_every_target_and_runs_nothing(project, capsys):
    assert check_main(["--all", "--dry-run"], machine=CPU) == 0
    out = capsys.readouterr().out
    assert "good@cpu: run: 1 request, tp1 pp1 dp1, driver in-process" in out
    assert "bad@cpu: run:" in out and not (project / "runs").exists()
    assert check_main(["good", "--dry-run", "--platform", "dgx_h100"], machine=CPU) == 0
    assert "good@dgx_h100: skip: this machine is cpu" in capsys.readouterr().out
    # A corrupt golden and an unset ${VAR} are invalid: exit 2, naming the file and field.
    (project / "golden" / "cpu" / "bad.json").write_text("{not json")
    (project / "cases" / "vars.yaml").write_text(
        "MODEL_ARGS: {--prompt-file: '${NO_SUCH_DIR}/p.jsonl'}\nDRIVER: in-process\n"
        "PLATFORMS: {cpu: {expected: not_recorded, reason: new}}\n"
    )
    assert check_main(["--all", "--dry-run"], machine=CPU) == 2
    out = capsys.readouterr().out
    assert "bad@cpu: invalid:" in out and "bad.json" in out
    assert "vars@cpu: invalid:" in out and "MODEL_ARGS.--prompt-file" in out
    assert "${NO_SUCH_DIR}" in out and "good@cpu: run:" in out


def test_deadline_flag_replaces_the_case_deadline(project, capsys):
    sleeper = shlex.join([sys.executable, "-c", "import time; time.sleep(60)"]) + " {output_path}"
    (project / "cases" / "slow.yaml").write_text(
        f"ENGINE: {json.dumps(sleeper)}\nDRIVER: in-process\nPROMPTS: [hello]\n"
        "PLATFORMS:\n  cpu: {expected: pass}\n"
    )
    (project / "golden" / "cpu" / "slow.json").write_text(json.dumps(GOLDEN))
    assert check_main(["slow", "--deadline-s", "1"], machine=CPU) == 1
    assert "passed the case's 1 s deadline" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        check_main(["slow", "--deadline-s", "0"], machine=CPU)
    assert bad.value.code == 2
    assert "--deadline-s: expected a positive number of seconds, got 0" in capsys.readouterr().err


def test_golden_flag_compares_one_case_with_the_given_file(project, capsys):
    other = json.loads(json.dumps(GOLDEN))
    other["0"]["generated_tokens"] = [9]
    path = project / "elsewhere.json"
    path.write_text(json.dumps(other))
    assert check_main(["good", "--golden", str(path)], machine=CPU) == 1
    assert "generated_tokens: differ at index 0: golden 9 vs current 5" in capsys.readouterr().err
    assert check_main(["good", "--golden", str(project / "golden/cpu/good.json")], machine=CPU) == 0
    assert check_main(["good", "bad", "--golden", str(path)], machine=CPU) == 2
    assert "--golden goes with exactly one case" in capsys.readouterr().err


def test_ctrl_c_reports_what_finished_and_exits_130(project):
    sleeper = shlex.join([sys.executable, "-c", "import time; time.sleep(60)"]) + " {output_path}"
    (project / "cases" / "slow.yaml").write_text(
        f"ENGINE: {json.dumps(sleeper)}\nDRIVER: in-process\nPROMPTS: [hello]\n"
        "PLATFORMS:\n  cpu: {expected: pass}\n"
    )
    (project / "golden" / "cpu" / "slow.json").write_text(json.dumps(GOLDEN))
    check = subprocess.Popen(
        [sys.executable, "-m", "logitsmatch.cli", "check", "good", "slow", "--platform", "cpu"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # why: a job started in the background by a non-interactive shell (a CI runner's)
        # inherits SIGINT ignored, and Python then never raises KeyboardInterrupt; a terminal's
        # Ctrl-C reaches a process whose SIGINT is the default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not list((project / "runs").glob("slow@cpu/*/repeat-1/engine.log")):
        assert time.monotonic() < deadline and check.poll() is None
        time.sleep(0.1)
    time.sleep(0.5)
    check.send_signal(signal.SIGINT)
    _, err = check.communicate(timeout=60)
    assert check.returncode == 130, err
    assert "interrupted: the report has the 1 of 2 targets that finished" in err
    assert "Traceback" not in err
    (summary,) = (project / "runs" / "all@cpu").glob("*/summary.md")
    assert summary.read_text().startswith("## logitsmatch: 1 passed")
    assert not _sleepers(), "the interrupted engine outlived check"


def _sleepers() -> list[str]:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return [
        line for line in ps.stdout.splitlines() if "time.sleep(60)" in line and "ps -eo" not in line
    ]


@pytest.fixture
def scratch_row():
    yield
    PLATFORMS.pop(SCRATCH, None)  # use_scratch registered this process's machine


def test_the_scratch_platform_records_and_checks_without_touching_shipped_goldens(
    project, capsys, scratch_row
):
    shipped = (project / "golden" / "cpu" / "good.json").read_text()
    assert record_main(["good", "--platform", "local"], machine=CPU) == 0
    assert (project / "golden" / "local" / "good.json").is_file()
    assert check_main(["good", "--platform", "local"], machine=CPU) == 0
    junit = (project / "runs" / "good@local" / "junit.xml").read_text()
    assert 'tests="1" failures="0" errors="0" skipped="0"' in junit
    assert (project / "golden" / "cpu" / "good.json").read_text() == shipped
    assert check_main(["bad", "--platform", "local"], machine=CPU) == 1  # no local golden yet
    assert "golden/local/bad.json" in capsys.readouterr().err
