"""run_target without a model: skips, golden errors, repeats and determinism, with a real
engine command (a small script that writes prepared output JSONs, one per call)."""

import json
import shlex
import sys
import textwrap

from logitsmatch.harness.cases import load_case
from logitsmatch.harness.reports import OutcomeStatus
from logitsmatch.harness.run import Machine, run_target

PASSED, FAILED, ERROR, SKIPPED, XFAILED, NOT_COMPARABLE = OutcomeStatus

CPU = Machine("cpu", "Some CPU", 0)
GOLDEN = {
    "0": {
        "input_prompt": "hello",
        "generated_text": " a b",
        "generated_tokens": [5, 6],
        "logprobs": [-1.0, -0.5, -0.25],
    },
    "throughput": [10.0],
}
# Writes the next of the outputs in plan.json (one per call) to argv[1].
ENGINE = textwrap.dedent("""
    import json, pathlib, sys
    here = pathlib.Path(__file__).parent
    plan = json.loads((here / "plan.json").read_text())
    calls = here / "calls"
    n = int(calls.read_text()) if calls.exists() else 0
    calls.write_text(str(n + 1))
    pathlib.Path(sys.argv[1]).write_text(json.dumps(plan[min(n, len(plan) - 1)]))
""")


def _setup(tmp_path, outputs, extra="", platforms="  cpu: {expected: pass}\n", golden=GOLDEN):
    (tmp_path / "engine.py").write_text(ENGINE)
    (tmp_path / "plan.json").write_text(json.dumps(outputs))
    engine = f"{shlex.quote(sys.executable)} {tmp_path / 'engine.py'} {{output_path}}"
    case_path = tmp_path / "cases" / "c.yaml"
    case_path.parent.mkdir()
    case_path.write_text(
        f'ENGINE: "{engine}"\nDRIVER: in-process\nPROMPTS: ["hello"]\n'
        f"PLATFORMS:\n{platforms}{extra}"
    )
    if golden is not None:
        path = tmp_path / "golden" / "cpu" / "c.json"
        path.parent.mkdir(parents=True)
        path.write_text(golden if isinstance(golden, str) else json.dumps(golden))
    return load_case(case_path)


def _run(tmp_path, case, machine=CPU):
    lines = []
    target = {t.platform: t for t in case.targets()}["cpu"]
    return run_target(target, machine, runs_root=tmp_path / "runs", echo=lines.append), lines


def test_pass_writes_run_folder_reports(tmp_path):
    case = _setup(tmp_path, [GOLDEN])
    result, lines = _run(tmp_path, case)
    assert result.outcome.status == PASSED
    assert result.run_dir.parent == tmp_path / "runs" / "c@cpu"
    assert (result.run_dir / "repeat-1" / "output.json").is_file()
    assert "<testcase" in (result.run_dir / "junit.xml").read_text()
    assert any("repeat-1: ok" in line for line in lines)
    assert "c@cpu: passed" in (result.run_dir / "run.log").read_text()


def test_a_changed_logprob_fails_naming_the_position(tmp_path):
    changed = json.loads(json.dumps(GOLDEN))
    changed["0"]["logprobs"][2] = -0.3
    result, _ = _run(tmp_path, _setup(tmp_path, [changed]))
    assert result.outcome.status == FAILED
    assert "logprob[2] (generated token 1)" in result.outcome.reason
    assert "FAILED c@cpu" in (result.run_dir / "summary.md").read_text()


def test_a_failure_names_how_the_golden_machine_differed_from_this_one(tmp_path):
    provenance = {"device_name": "Another CPU", "packages": {"torch": "0.1"}, "python": "2.7"}
    golden = {"_provenance": provenance, **GOLDEN}
    changed = json.loads(json.dumps(GOLDEN))
    changed["0"]["logprobs"][2] = -0.3
    failed, _ = _run(tmp_path, _setup(tmp_path, [changed], golden=golden))
    assert failed.outcome.environment == ("device Another CPU -> Some CPU",)
    assert "changed since the golden was recorded: device Another CPU -> Some CPU" in (
        failed.outcome.message()
    )
    # The case's own ENGINE runs outside this environment: its packages are not compared.
    assert "torch" not in failed.outcome.message()
    other = tmp_path / "other"
    other.mkdir()
    passed, _ = _run(other, _setup(other, [GOLDEN], golden=golden))
    assert passed.outcome.status == PASSED and passed.outcome.environment == ()


def test_every_repeat_must_pass(tmp_path):
    changed = json.loads(json.dumps(GOLDEN))
    changed["0"]["generated_tokens"] = [5, 7]
    result, _ = _run(tmp_path, _setup(tmp_path, [GOLDEN, changed], "N_REPEAT: 2\n"))
    assert result.outcome.status == FAILED
    assert result.outcome.reason.startswith("repeat 2 of 2: request '0' generated_tokens")


def test_deterministic_repeats_must_be_bit_identical(tmp_path):
    within_tolerance = json.loads(json.dumps(GOLDEN))
    within_tolerance["0"]["logprobs"][1] = -0.5000001
    plan = [GOLDEN, within_tolerance]
    result, _ = _run(tmp_path, _setup(tmp_path, plan, "N_REPEAT: 2\nDETERMINISTIC: true\n"))
    assert result.outcome.status == FAILED
    assert "not bit-identical" in result.outcome.reason and "repeat 2 vs repeat 1" in (
        result.outcome.reason
    )
    # Without DETERMINISTIC the same repeats pass: both are within the tolerance.
    other = tmp_path / "other"
    other.mkdir()
    result, _ = _run(other, _setup(other, plan, "N_REPEAT: 2\n"))
    assert result.outcome.status == PASSED


def test_xfail_is_honoured(tmp_path):
    changed = json.loads(json.dumps(GOLDEN))
    changed["0"]["generated_tokens"] = [9, 9]
    platforms = "  cpu: {expected: xfail, reason: known bug 12}\n"
    result, _ = _run(tmp_path, _setup(tmp_path, [changed], platforms=platforms))
    assert result.outcome.status == XFAILED and "known bug 12" in result.outcome.reason


def test_a_crash_is_an_error_with_the_log(tmp_path):
    case = _setup(tmp_path, [GOLDEN])
    (tmp_path / "engine.py").write_text("import sys\nprint('oops')\nsys.exit(2)\n")
    result, _ = _run(tmp_path, case)
    assert result.outcome.status == ERROR
    log = result.run_dir / "repeat-1" / "engine.log"
    assert result.outcome.reason.startswith(f"the engine exited 2; engine log: {log}")


def test_not_recorded_without_golden_is_skipped_without_running(tmp_path):
    platforms = "  cpu: {expected: not_recorded, reason: new case}\n"
    result, _ = _run(tmp_path, _setup(tmp_path, [GOLDEN], platforms=platforms, golden=None))
    assert result.outcome.status == SKIPPED and result.run_dir is None
    assert "no golden for this platform yet" in result.outcome.reason
    assert not (tmp_path / "calls").exists()


def test_missing_or_corrupt_golden_is_an_error(tmp_path):
    result, _ = _run(tmp_path, _setup(tmp_path, [GOLDEN], golden=None))
    assert result.outcome.status == ERROR and "does not exist" in result.outcome.reason
    other = tmp_path / "other"
    other.mkdir()
    result, _ = _run(other, _setup(other, [GOLDEN], golden="{not json"))
    assert result.outcome.status == ERROR
    assert result.outcome.reason.startswith(
        f"{other / 'golden' / 'cpu' / 'c.json'}: not valid JSON"
    )


def test_another_machine_skips_with_a_reason(tmp_path):
    case = _setup(tmp_path, [GOLDEN])
    result, _ = _run(tmp_path, case, Machine("dgx_h100", "NVIDIA H100", 8))
    assert result.outcome.status == SKIPPED
    assert result.outcome.reason == "this machine is dgx_h100 (8× NVIDIA H100), not cpu"


def test_the_case_deadline_stops_a_hanging_engine(tmp_path):
    case = _setup(tmp_path, [GOLDEN], "DEADLINE_S: 1\n")
    (tmp_path / "engine.py").write_text("import time\ntime.sleep(60)\n")
    result, _ = _run(tmp_path, case)
    assert result.outcome.status == ERROR
    assert result.outcome.reason.startswith("the engine passed the case's 1 s deadline")
    assert result.outcome.duration_s < 20
