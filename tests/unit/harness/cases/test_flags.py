"""What reaches `logitsmatch generate`: the allow-list, the platform's device/dtype, ${VAR}s."""

from pathlib import Path

import pytest

from logitsmatch.engine.generate import parser as generate_parser
from logitsmatch.harness.cases import CaseError, load_case
from logitsmatch.harness.cases.flags import (
    PASSED_THROUGH,
    RUNNER_OWNED,
    builtin_argv,
    expand_vars,
    mode_flags,
    run_environ,
    split_model_args,
)
from logitsmatch.harness.cases.platforms import PLATFORMS
from logitsmatch.serving.zmq_generate import parser as zmq_parser

MEGATRON = (
    Path(__file__).parents[3]
    / "data"
    / "megatron"
    / "gpt_dynamic_inference_tp1_pp8_dp1_583m_logitsmatch_zmq"
)


def _case(tmp_path, model_args: str, extra: str = "", name: str = "c", driver="in-process"):
    path = tmp_path / "cases" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        "MODEL_ARGS:\n"
        + model_args
        + 'PROMPTS: ["hello"]\nPLATFORMS:\n  cpu: {expected: pass}\n'
        + f"DRIVER: {driver}\n"
        + extra
    )
    return load_case(path)


def test_allow_list_is_what_generate_accepts():
    options = {o for a in generate_parser()._actions for o in a.option_strings}
    assert options >= PASSED_THROUGH
    assert options >= RUNNER_OWNED
    assert not PASSED_THROUGH & RUNNER_OWNED


def test_megatron_training_flags_are_ignored_not_passed():
    case = load_case(MEGATRON)
    passed, ignored = split_model_args(case.model_args)
    assert {"--use-mcore-models", "--load", "--tokenizer-model", "--sequence-parallel"} <= set(
        ignored
    )
    # The runner owns the output path; the prompts it passes in a file of its own.
    assert "--output-path" in ignored and "--prompts" not in ignored | passed.keys()
    assert "--incoming-requests-per-step" in ignored
    assert passed["--pipeline-model-parallel-size"] == 8 and passed["--top_k"] == 1
    assert set(passed) | set(ignored) | {"--prompts"} == set(case.model_args)
    # Through the ZMQ coordinator, the requests-per-step flag is used (by mode_flags).
    _, ignored_zmq = split_model_args(case.model_args, zmq=True)
    assert set(ignored) - set(ignored_zmq) == {"--incoming-requests-per-step"}


def test_zmq_cases_run_through_the_coordinator(tmp_path):
    zmq = _case(tmp_path, "  --incoming-requests-per-step: 8\n", name="c_zmq", driver="zmq")
    assert mode_flags(zmq) == ["--zmq", "--incoming-requests-per-step", "8"]
    assert mode_flags(_case(tmp_path, "  --model: tiny\n", name="d_zmq", driver="zmq"))[-1] == "32"
    assert mode_flags(_case(tmp_path, "  --incoming-requests-per-step: 8\n")) == []
    argv = builtin_argv(
        PLATFORMS["cpu"],
        {"--model": "tiny"},
        prompt_file=tmp_path / "p.jsonl",
        output_path=tmp_path / "o.json",
        run_dir=tmp_path,
        deadline_s=60,
        mode=mode_flags(zmq),
    )
    args = zmq_parser().parse_args(argv[4:])
    assert (args.zmq, args.incoming_requests_per_step, args.model) == (True, 8, "tiny")


def test_builtin_argv_parses_with_generate_and_takes_the_platform(tmp_path):
    case = _case(
        tmp_path,
        "  --model: tiny\n  --top_k: 1\n  --stop-strings: ['.', 'x']\n  --batch-invariant: true\n",
    )
    passed, _ = split_model_args(case.model_args)
    argv = builtin_argv(
        PLATFORMS["cpu"],
        passed,
        prompt_file=tmp_path / "p.jsonl",
        output_path=tmp_path / "o.json",
        run_dir=tmp_path,
        deadline_s=123.4,
    )
    assert argv[1:4] == ["-m", "logitsmatch.cli", "generate"]
    args = generate_parser().parse_args(argv[4:])
    assert (args.model, args.top_k, args.stop_strings, args.batch_invariant) == (
        "tiny",
        1,
        [".", "x"],
        True,
    )
    assert (args.device, args.dtype, args.deadline_s) == ("cpu", "float32", 123.0)
    assert args.prompt_file == tmp_path / "p.jsonl" and args.run_dir == str(tmp_path)


def test_a_case_dtype_wins_over_the_platform_dtype(tmp_path):
    case = _case(tmp_path, "  --bf16: true\n")
    argv = builtin_argv(
        PLATFORMS["dgx_h100"],
        dict(case.model_args),
        prompt_file=Path("p"),
        output_path=Path("o"),
        run_dir=Path("r"),
        deadline_s=1,
    )
    assert "--dtype" not in argv and "--bf16" in argv
    assert argv[argv.index("--device") + 1] == "cuda"


def test_vars_expand_from_the_environment_and_a_missing_one_is_named(tmp_path):
    case = _case(tmp_path, "  --model: ${MODEL_DIR}/m.gguf\n", "ENV_VARS:\n  A: ${HOME_X}/a\n")
    assert expand_vars(case, case.model_args, {"MODEL_DIR": "/w"}) == {"--model": "/w/m.gguf"}
    with pytest.raises(CaseError, match=r"MODEL_ARGS.--model: \$\{MODEL_DIR\} is not set"):
        expand_vars(case, case.model_args, {})
    env = run_environ(case, {"HOME_X": "/h", "PATH": "/bin"})
    assert (env["A"], env["PATH"], env["PYTHONUNBUFFERED"]) == ("/h/a", "/bin", "1")
