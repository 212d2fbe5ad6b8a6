"""What reaches `logitsmatch generate`: the flag table, the platform's device/dtype, ${VAR}s."""

from pathlib import Path

import pytest

from logitsmatch.engine.generate_args import generate_parser
from logitsmatch.harness.cases import CaseError, load_case
from logitsmatch.harness.cases.flag_table import TABLE, Use
from logitsmatch.harness.cases.flags import (
    builtin_argv,
    expand_vars,
    mode_flags,
    run_environ,
)
from logitsmatch.harness.cases.platforms import PLATFORMS
from logitsmatch.serving.zmq_generate import parser as zmq_parser

CORPUS = Path(__file__).parents[3] / "data" / "megatron"
MEGATRON = CORPUS / "gpt_dynamic_inference_tp1_pp8_dp1_583m_logitsmatch_zmq"


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


def _options(parser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def test_every_engine_row_is_a_flag_generate_and_generate_zmq_accept():
    engine = {
        rule.engine_flag or flag
        for flag, rule in TABLE.items()
        if rule.use is Use.ENGINE and rule.engine_flag != ""
    }
    assert engine <= _options(generate_parser())
    assert engine <= _options(zmq_parser())


def test_every_flag_of_the_megatron_corpus_is_a_row():
    import yaml

    flags = set()
    for config in CORPUS.glob("*/model_config.yaml"):
        flags |= set(yaml.safe_load(config.read_text())["MODEL_ARGS"] or {})
    assert len(flags) == 69
    assert flags <= set(TABLE)


def test_an_unknown_flag_names_the_file_the_flag_and_the_nearest(tmp_path):
    with pytest.raises(
        CaseError,
        match=r"c.yaml: MODEL_ARGS.--top-kk: not a known flag; did you "
        r"mean '--top-k'\?",
    ):
        _case(tmp_path, "  --top-kk: 1\n")


def test_a_megatron_folder_passes_its_engine_flags_and_names_its_no_ops():
    case = load_case(MEGATRON)
    args = case.engine_args
    assert args["--pipeline-model-parallel-size"] == 8 and args["--top_k"] == 1
    assert args["--model"] == "gpt-583m" and args["--bf16"] is True
    assert not {"--load", "--use-mcore-models", "--output-path", "--prompts"} & set(args)
    unused = {flag: use for flag, use, _ in case.flags.unused}
    assert unused["--sequence-parallel"] is Use.GPU_ONLY
    assert unused["--log-timers-to-tensorboard"] is Use.NOT_APPLICABLE
    assert "--incoming-requests-per-step" not in unused  # the ZMQ driver uses it
    assert case.blocked == ()


def test_renamed_and_converted_megatron_flags(tmp_path):
    case = _case(
        tmp_path,
        "  --inference-dynamic-batching-max-tokens: 64\n"
        "  --inference-dynamic-batching-max-requests: 4\n"
        '  --stop-words: \'"the" "a b"\'\n'
        "  --enable-chunked-prefill: true\n",
    )
    assert case.flags.engine_args == {
        "--inference-max-batch-tokens": 64,
        "--inference-max-requests": 4,
        "--stop-strings": ["the", "a b"],
    }


def test_a_missing_feature_blocks_the_case_and_is_named(tmp_path):
    policy = "--inference-dynamic-batching-prefix-caching-coordinator-policy"
    routed = load_case(
        CORPUS / "gpt_dynamic_inference_tp1_pp1_dp8_583m_prefix_caching_longest_prefix_zmq"
    )
    assert routed.blocked == ()
    assert mode_flags(routed)[-2:] == [policy, "longest_prefix"]
    assert routed.engine_args["--inference-dynamic-batching-prefix-caching"] is True
    # DP comes from the folder's name (upstream's world size) and reaches the engine.
    assert routed.engine_args["--data-parallel-size"] == 8
    assert routed.engine_args["--kv-cache-tokens"] == ["4096"]
    # Only the coordinator routes: in-process replicas take the prompts round robin.
    with pytest.raises(CaseError, match=r"needs prefix-aware routing, which the ZMQ coordinator"):
        _case(tmp_path, f"  {policy}: longest_prefix\n", name="routed")
    assert _case(tmp_path, f"  {policy}: load_balanced\n", name="balanced").blocked == ()
    # Arrivals run in the engine's own loop too: they reach it as flags.
    paced = _case(tmp_path, "  --incoming-requests-per-step: 1\n", name="paced")
    assert paced.blocked == () and paced.engine_args["--incoming-requests-per-step"] == 1


def test_zmq_cases_run_through_the_coordinator(tmp_path):
    zmq = _case(tmp_path, "  --incoming-requests-per-step: 8\n", name="c_zmq", driver="zmq")
    assert mode_flags(zmq) == ["--zmq"]
    assert mode_flags(_case(tmp_path, "  --incoming-requests-per-step: 8\n")) == []
    argv = builtin_argv(
        PLATFORMS["cpu"],
        {"--model": "tiny", **zmq.engine_args},
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
    argv = builtin_argv(
        PLATFORMS["cpu"],
        case.engine_args,
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


def test_a_megatron_folder_asks_for_the_prompt_top_n_as_upstream_does(tmp_path):
    folder = load_case(CORPUS / "gpt_dynamic_inference_tp1_pp1_583m_top_n_logprobs")
    assert folder.flags.engine_args["--top-n-logprobs"] == 5
    assert folder.flags.engine_args["--return-prompt-top-n-logprobs"] is True
    ours = _case(tmp_path, "  --top-n-logprobs: 5\n")
    assert "--return-prompt-top-n-logprobs" not in ours.flags.engine_args


def test_a_policy_typo_fails_at_load_naming_the_nearest_policy(tmp_path):
    eviction = "--inference-dynamic-batching-prefix-caching-eviction-policy"
    with pytest.raises(
        CaseError,
        match=r"c.yaml: MODEL_ARGS.--inference-dynamic-batching-prefix-caching-eviction-policy: "
        r"'lur' is not one of \['ref_zero', 'lru'\]; did you mean 'lru'\?",
    ):
        _case(tmp_path, f"  {eviction}: lur\n")
    routing = "--inference-dynamic-batching-prefix-caching-coordinator-policy"
    with pytest.raises(CaseError, match=r"'longest' is not one of .*did you mean 'longest_prefix'"):
        _case(tmp_path, f"  {routing}: longest\n", name="z_zmq", driver="zmq")


def test_the_engine_refuses_an_unknown_policy_by_its_flag():
    with pytest.raises(SystemExit) as exit_:
        generate_parser().parse_args(
            ["--prompts", "a", "--inference-dynamic-batching-prefix-caching-eviction-policy", "x"]
        )
    assert exit_.value.code == 2
