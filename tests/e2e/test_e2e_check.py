"""`logitsmatch check` end to end, against a real engine that is broken on purpose.

The engine change is real: tests/e2e/perturbed_engine.py runs the engine's own generate path
after adding a constant to every element of one weight matrix (layer 0's MLP down projection)
of the model it built. At 1e-3 the logprobs move by ~1e-3..3e-3 (beyond the abs 1e-3 tolerance);
at 1e-6 by ~3e-6 (within it).
"""

import json
import shlex
import sys
from importlib import metadata
from pathlib import Path

import pytest
from e2e_project import CASE, REPO, logitsmatch, write_case

from logitsmatch.harness.cases import load_case
from logitsmatch.harness.judge.teacher_forcing import engine_tokenizer
from logitsmatch.harness.reports import OutcomeStatus
from logitsmatch.harness.run import Machine, run_target

FAILED, ERROR = OutcomeStatus.FAILED, OutcomeStatus.ERROR

PERTURBED = f"{shlex.quote(sys.executable)} {REPO / 'tests/e2e/perturbed_engine.py'}"
CPU = Machine("cpu", "test CPU", 0)


def _perturbed_check(project: Path, add: str, folder: str):
    """check --all over two cases with the same golden: CASE runs the perturbed engine, its
    twin ``CASE_builtin`` the unchanged builtin engine."""
    engine = f"{PERTURBED} --perturb-add {add} {{model_args}} --output-path {{output_path}}"
    write_case(project / folder, engine=engine)
    write_case(project / folder, f"{CASE}_builtin")
    golden = project / "golden" / "cpu"
    (golden / f"{CASE}_builtin.json").write_text((golden / f"{CASE}.json").read_text())
    report = project / f"report_{add}"
    args = ("--all", "--platform", "cpu", "--cases-dir", folder, "--report-dir", str(report))
    return logitsmatch(project, "check", *args), report


def test_a_weight_perturbed_by_1e_3_fails_the_right_case_at_the_first_diverging_position(
    recorded,
):
    proc, report = _perturbed_check(recorded, "1e-3", "cases_1e-3")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = (report / "summary.md").read_text()
    assert summary.startswith("## logitsmatch: 1 passed, 1 failed")
    assert f"| `{CASE}_builtin@cpu` | ✅ passed |" in summary
    assert f"FAILED {CASE}@cpu" in summary
    # The tiny model's first logprob beyond 1e-3 (deterministic: batch-invariant numerics).
    assert "request '0' logprobs: first beyond abs 0.001 at logprob[3] (prompt token 4)" in summary
    # not a case of cases/, so no nox session names it: the line names its file
    assert f"reproduce: logitsmatch check cases_1e-3/{CASE}.yaml --platform cpu" in summary
    junit = (report / "junit.xml").read_text()
    assert 'tests="2" failures="1" errors="0"' in junit
    assert (report / "plots" / f"{CASE}@cpu.png").is_file()


def test_the_same_perturbation_below_tolerance_passes(recorded):
    proc, report = _perturbed_check(recorded, "1e-6", "cases_1e-6")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (report / "summary.md").read_text().startswith("## logitsmatch: 2 passed")


def test_a_changed_token_is_teacher_forced_at_every_golden_position(recorded, tmp_path):
    """The golden says another token at generated position 2 (its top-2 candidate there): the
    run diverges at 2, and scoring the golden continuation shows no drift before it."""
    golden = json.loads((recorded / "golden" / "cpu" / f"{CASE}.json").read_text())
    request = golden["0"]
    original = request["generated_tokens"][2]
    top = request["top_n_logprobs"][2]
    alternative = int(sorted(top, key=lambda t: -top[t])[1])
    request["generated_tokens"][2] = alternative
    golden["_provenance"]["packages"]["torch"] = "2.11.0"
    tampered = tmp_path / "golden" / "cpu" / f"{CASE}.json"
    tampered.parent.mkdir(parents=True)
    tampered.write_text(json.dumps(golden))
    case = load_case(write_case(tmp_path / "cases"))
    result = run_target(case.targets()[0], CPU, runs_root=tmp_path / "runs", echo=lambda _: None)
    assert result.outcome.status == FAILED
    verdict = result.outcome.verdict.request("0")
    assert verdict.divergence.position == 2 and verdict.divergence.golden_token == alternative
    assert verdict.divergence.current_token == original
    # Both tokens are named as text too, decoded by the engine's tokenizer.
    tokenizer = engine_tokenizer({"--model": "tiny"})
    golden_text = tokenizer.decode([alternative])
    assert verdict.divergence.golden_text == golden_text
    assert f"golden {alternative} {golden_text!r} vs current {original} " in (
        result.outcome.message()
    )
    assert (result.run_dir / "scoring" / "output.json").is_file()
    n_prompt = verdict.n_prompt_logprobs
    assert len(verdict.drift) == len(request["logprobs"])
    # Same context, same engine: the prompt and the first two golden tokens score as recorded.
    assert max(verdict.drift[: n_prompt + 2]) <= 1e-5
    # At position 2 the golden's logprob is the original token's, the score the alternative's.
    assert verdict.drift[n_prompt + 2] == pytest.approx(
        top[str(original)] - top[str(alternative)], abs=1e-5
    )
    assert "teacher-forced drift: max |Δ|" in result.outcome.message()
    # The builtin engine runs in this environment: a package the golden saw otherwise is named.
    assert f"torch 2.11.0 -> {metadata.version('torch')}" in result.outcome.environment


@pytest.mark.parametrize("name", [CASE, f"{CASE}_zmq"])
def test_a_rank_crash_names_the_rank_and_its_log(recorded, tmp_path, name):
    """A real crash of rank 1 of 2 (a sitecustomize on the ranks' PYTHONPATH ends that
    process), in the engine's own loop and through the ZMQ coordinator (``*_zmq``)."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import os\nif os.environ.get('RANK') == '1':\n    os._exit(3)\n"
    )
    write_case(
        tmp_path / "cases",
        name,
        ENV_VARS={"PYTHONPATH": str(hooks)},
        MODEL_ARGS={
            "--model": "tiny",
            "--tensor-model-parallel-size": 2,
            "--num-tokens-to-generate": 2,
            "--prompts": ["hello"],
        },
    )
    golden = tmp_path / "golden" / "cpu" / f"{name}.json"
    golden.parent.mkdir(parents=True)
    golden.write_text((recorded / "golden" / "cpu" / f"{CASE}.json").read_text())
    case = load_case(tmp_path / "cases" / f"{name}.yaml")
    result = run_target(case.targets()[0], CPU, runs_root=tmp_path / "runs", echo=lambda _: None)
    assert result.outcome.status == ERROR
    first = result.outcome.reason.splitlines()[0]
    assert first.startswith(
        "the engine crashed: rank 1 (tp=1 pp=0 dp=0) failed first (exit code 3); rank log: "
    )
    assert f"engine log: {result.run_dir / 'repeat-1' / 'engine.log'}" in first
