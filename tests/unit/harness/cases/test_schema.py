"""Case YAML schema: loading, derived values and errors that name file, key and form."""

import textwrap
from pathlib import Path

import pytest

from logitsmatch.harness.cases import CaseError, CaseTarget, load_all, load_case
from logitsmatch.harness.cases.schema import model_args_argv

MEGATRON = (
    Path(__file__).parents[3]
    / "data"
    / "megatron"
    / "gpt_dynamic_inference_tp1_pp8_dp1_583m_logitsmatch_zmq"
)

GOOD = """\
DRIVER: in-process
MODEL_ARGS:
  --model: tiny
  --tensor-model-parallel-size: 2
  --pipeline-model-parallel-size: 2
  --data-parallel-size: 2
  --return-log-probs: true
  --no-chunked-prefill: false
  --stop-strings: ["\\n", "."]
METRICS: [generated_tokens, logprobs]
PLATFORMS:
  cpu: {expected: pass}
  dgx_h100: {expected: not_recorded, reason: no H100 yet}
PROMPTS: ["one", "two", "three"]
"""


def write(tmp_path: Path, text: str, name: str = "mycase") -> Path:
    cases = tmp_path / "cases"
    cases.mkdir(exist_ok=True)
    path = cases / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_case_loads_with_derived_values(tmp_path):
    case = load_case(write(tmp_path, GOOD))
    assert case.name == "mycase"
    assert (case.tensor_parallel, case.pipeline_parallel, case.data_parallel, case.nproc) == (
        2,
        2,
        2,
        8,
    )
    assert case.prompts == ("one", "two", "three") and case.load_prompts({}) == case.prompts
    assert case.tolerances.logprobs_abs == 1e-3 and case.n_repeat == 1
    assert not case.deterministic and case.engine == "builtin"
    targets = case.targets()
    assert [t.id for t in targets] == ["mycase@cpu", "mycase@dgx_h100"]
    assert targets[0].golden_path == tmp_path / "golden" / "cpu" / "mycase.json"
    assert (targets[1].expected, targets[1].reason) == ("not_recorded", "no H100 yet")


def test_model_args_become_argv():
    argv = model_args_argv(
        {"--a": 1, "--flag": True, "--off": False, "--none": None, "--many": ["x", 2]}
    )
    assert argv == ["--a", "1", "--flag", "--many", "x", "2"]


def test_nproc_gives_data_parallel(tmp_path):
    case = load_case(
        write(
            tmp_path,
            """\
        MODEL_ARGS: {--tensor-model-parallel-size: 2, --prompts: hi}
        PLATFORMS: {cpu: {}}
        NPROC: 8
        DRIVER: in-process
        ENGINE: "torchrun --nproc-per-node {nproc} gpt.py {model_args} --output-path {output_path}"
        """,
        )
    )
    assert (case.data_parallel, case.nproc) == (4, 8)


def test_nproc_not_a_multiple_of_tp_pp_is_an_error(tmp_path):
    path = write(
        tmp_path,
        """\
        MODEL_ARGS: {--tensor-model-parallel-size: 3, --prompts: hi}
        PLATFORMS: {cpu: {}}
        NPROC: 8
        DRIVER: in-process
        """,
    )
    with pytest.raises(CaseError, match=r"mycase.yaml: NPROC: expected tp × pp × dp"):
        load_case(path)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            GOOD + "SEED: 3\n",
            r"mycase\.yaml: SEED: expected DESCRIPTION or ENV_VARS or .*; did you mean ",
        ),
        (GOOD + "N_REPEAT: two\n", r"mycase\.yaml: N_REPEAT: expected an integer >= 1, got 'two'"),
        (GOOD + "DETERMINISTIC: 1\n", r"mycase\.yaml: DETERMINISTIC: expected true or false"),
        (GOOD + "DEADLINE_S: -5\n", r"mycase\.yaml: DEADLINE_S: expected a number > 0"),
        (
            GOOD.replace("METRICS: [generated_tokens, logprobs]", "METRICS: [lm loss]"),
            r"mycase\.yaml: METRICS: expected a non-empty list of generated_tokens",
        ),
        (
            GOOD.replace("--model: tiny", "model: tiny"),
            r"mycase\.yaml: MODEL_ARGS\.model: expected a flag starting with '--'",
        ),
        (
            GOOD.replace("--model: tiny", "--model: {a: 1}"),
            r"MODEL_ARGS\.--model: expected a string, number, bool or list",
        ),
        (
            GOOD.replace("expected: pass", "expected: green"),
            r"PLATFORMS\.cpu\.expected: expected pass or not_recorded or xfail or skip, "
            r"got 'green'",
        ),
        (
            GOOD.replace(", reason: no H100 yet", ""),
            r"PLATFORMS\.dgx_h100\.reason: expected a string saying why it is not_recorded",
        ),
        (
            GOOD.replace("cpu: {expected: pass}", "CPU-1: {expected: pass}"),
            r"PLATFORMS\.CPU-1: expected a platform name",
        ),
        (
            GOOD + "TOLERANCES: {logprobs: {rel: 0.1}}\n",
            r"TOLERANCES: logprobs\.rel: unknown field; expected one of abs",
        ),
        (
            GOOD + "TOLERANCES: {logprobs: {abs: small}}\n",
            r"TOLERANCES: logprobs\.abs: expected a number, got 'small'",
        ),
        (GOOD + "ENV_VARS: {A: [1]}\n", r"ENV_VARS\.A: expected a string or number"),
        (GOOD + "MODE: training\n", r"MODE: expected 'inference'"),
        (
            GOOD + "ENGINE: 'run {model_args} --out {output}'\n",
            r"ENGINE: .*unknown placeholder "
            r"\{output\}",
        ),
        (GOOD + "ENGINE: 'run {model_args}'\n", r"ENGINE: expected a command with \{output_path\}"),
        ("- just\n- a list\n", r"mycase\.yaml: <top level>: expected a mapping"),
        ("MODEL_ARGS: [unclosed\n", r"mycase\.yaml: not valid YAML"),
    ],
)
def test_schema_errors_name_file_key_and_form(tmp_path, text, pattern):
    with pytest.raises(CaseError, match=pattern):
        load_case(write(tmp_path, text))


def test_missing_prompt_is_an_error(tmp_path):
    path = write(tmp_path, GOOD.replace('PROMPTS: ["one", "two", "three"]\n', ""))
    with pytest.raises(
        CaseError,
        match=r"mycase\.yaml: PROMPTS: missing prompt: expected "
        r"PROMPTS: \[\"text\", \.\.\.\] or MODEL_ARGS --prompts",
    ):
        load_case(path)


def test_empty_prompt_and_two_prompt_sources_are_errors(tmp_path):
    with pytest.raises(CaseError, match=r"PROMPTS: expected a non-empty list of non-empty"):
        load_case(write(tmp_path, GOOD.replace('["one", "two", "three"]', '["one", ""]')))
    both = GOOD.replace("  --model: tiny", "  --model: tiny\n  --prompts: hello")
    with pytest.raises(CaseError, match=r"--prompts: the prompts are already given by PROMPTS"):
        load_case(write(tmp_path, both))


def test_prompt_file_jsonl_relative_to_the_case(tmp_path, monkeypatch):
    path = write(
        tmp_path,
        """\
        MODEL_ARGS: {--prompt-file: "${PROMPT_DIR}/p.jsonl"}
        PLATFORMS: {cpu: {}}
        DRIVER: in-process
        """,
    )
    (tmp_path / "cases" / "data").mkdir()
    (tmp_path / "cases" / "data" / "p.jsonl").write_text('{"prompt": "a"}\n\n{"text": "b"}\n"c"\n')
    monkeypatch.setenv("PROMPT_DIR", "data")
    assert load_case(path).prompts == ("a", "b", "c")
    monkeypatch.delenv("PROMPT_DIR")
    # An unset variable: the case loads (a Megatron folder's ${DATA_PATH} may be set only
    # where it runs), and reading its prompts names the file, the field and the variable.
    case = load_case(path)
    assert case.prompts == () and case.prompt_file is not None
    with pytest.raises(
        CaseError,
        match=r"mycase\.yaml: MODEL_ARGS\.--prompt-file: expected a path whose "
        r"\$\{PROMPT_DIR\} is set",
    ):
        case.load_prompts({})
    assert case.load_prompts({"PROMPT_DIR": "data"}) == ("a", "b", "c")


def test_prompt_file_errors_name_the_line(tmp_path):
    path = write(
        tmp_path, "MODEL_ARGS: {--prompt-file: p.jsonl}\nPLATFORMS: {cpu: {}}\nDRIVER: in-process\n"
    )
    (tmp_path / "cases" / "p.jsonl").write_text('"fine"\n{"prompt": 3}\n')
    with pytest.raises(CaseError, match=r"p\.jsonl:2: expected a non-empty string"):
        load_case(path)


def test_engine_template_renders_argv(tmp_path):
    case = load_case(
        write(
            tmp_path,
            GOOD + "ENGINE: 'torchrun --nproc-per-node {nproc} "
            "gpt.py {model_args} --output-path {output_path}'\n",
        )
    )
    argv = case.engine_argv(output_path="/tmp/o.json")
    assert argv[:4] == ["torchrun", "--nproc-per-node", "8", "gpt.py"]
    assert argv[-2:] == ["--output-path", "/tmp/o.json"]
    assert argv[argv.index("--stop-strings") :][:3] == ["--stop-strings", "\n", "."]
    assert "--no-chunked-prefill" not in argv and "--return-log-probs" in argv


def test_megatron_folder_loads_as_a_case_as_is(tmp_path):
    case = load_case(MEGATRON, golden_root=tmp_path)
    assert case.name == "gpt_dynamic_inference_tp1_pp8_dp1_583m_logitsmatch_zmq"
    assert case.nproc == 8 and case.pipeline_parallel == 8
    assert case.metrics == ("generated_tokens", "logprobs")
    assert case.prompts[0].startswith("Time travel to 2008") and len(case.prompts) == 1
    assert case.env_vars["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert case.env_vars["CUDA_DEVICE_MAX_CONNECTIONS"] == "1"
    assert case.deterministic  # from --deterministic-mode: true
    assert case.test_type == "frozen-start"
    target = CaseTarget(case, "dgx_h100")
    assert target.id == f"{case.name}@dgx_h100" and target.expected == "pass"
    assert target.golden_path == MEGATRON / "golden_values_dev_dgx_h100.json"
    cpu = CaseTarget(case, "cpu")
    assert (
        cpu.expected == "not_recorded" and cpu.golden_path == tmp_path / "cpu" / f"{case.name}.json"
    )
    assert case.binding.stand_in and case.binding.engine_args == {"--model": "gpt-583m"}
    assert "nemo_minitron-0.5b" in (case.binding.golden_model or "")
    with pytest.raises(CaseError, match=r"PLATFORMS: 'dgx_a100' is not listed"):
        CaseTarget(case, "dgx_a100")


def test_load_all_finds_files_and_megatron_folders_sorted(tmp_path):
    write(tmp_path, GOOD, "b_case")
    write(tmp_path, GOOD, "a_case")
    folder = tmp_path / "cases" / "c_megatron"
    folder.mkdir()
    for src in MEGATRON.iterdir():
        (folder / src.name).write_bytes(src.read_bytes())
    (tmp_path / "cases" / "notes.txt").write_text("ignored")
    cases = load_all(tmp_path / "cases")
    assert [c.name for c in cases] == ["a_case", "b_case", "c_megatron"]
    with pytest.raises(CaseError, match="no such cases folder"):
        load_all(tmp_path / "nothing")


def test_the_schema_example_in_the_docstring_loads(tmp_path):
    import logitsmatch.harness.cases.schema as case_module

    doc = case_module.__doc__
    example = doc[doc.index("::\n") + 3 : doc.index("\nRequest ids")]
    case = load_case(write(tmp_path, textwrap.dedent(example), "example"))
    assert case.nproc == 8 and case.prompts == ("Time travel to 2008, ...",)
    assert case.platforms["dgx_h100"] == ("not_recorded", "no H100 golden yet")
    assert case.deterministic and case.n_repeat == 1 and case.deadline_s == 900.0
