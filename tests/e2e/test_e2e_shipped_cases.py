"""The shipped cases: valid, recorded on cpu, and really exercising the feature they name.

Whether a cache preempts or a prompt is chunked depends on token counts and the cache and
scheduler limits, not on the weights: those checks run the case's prompts and limits through
the engine with the fast synthetic "tiny" model (same tokenizer as SmolLM2-135M).
"""

from pathlib import Path

import pytest

from logitsmatch.engine import build_engine, generate
from logitsmatch.engine.generate_args import engine_options, generate_parser
from logitsmatch.engine.loader import resolve
from logitsmatch.harness.cases import load_all
from logitsmatch.harness.cases.schema import model_args_argv
from logitsmatch.harness.goldens import load_output

ROOT = Path(__file__).resolve().parents[2]
CASES = {case.name: case for case in load_all(ROOT / "cases")}
PREFIX = "gpt_dynamic_inference_"


def _feature(suffix: str):
    return CASES[f"{PREFIX}tp1_pp1_dp1_smollm2_logitsmatch_{suffix}"]


def _run_with_tiny(case):
    argv = model_args_argv({**case.engine_args, "--model": "tiny", "--termination-id": -1})
    args = generate_parser().parse_args([*argv, "--prompts", *case.prompts, "--output-path", "x"])
    engine = build_engine(engine_options(args))
    records, _ = generate.run_requests(engine, args, list(case.prompts))
    return engine, records


def test_the_coordinator_matrix_and_feature_cases_are_shipped():
    layouts = {"tp1_pp8_dp1_smollm2", "tp8_pp1_dp1_tiny", "tp1_pp1_dp8_smollm2", "tp2_pp2_dp2_tiny"}
    assert {f"{PREFIX}{x}_logitsmatch_zmq" for x in layouts} <= set(CASES)
    features = {"chunked_prefill", "preemption", "top_p_sampling", "stop_strings"}
    assert {f"{PREFIX}tp1_pp1_dp1_smollm2_logitsmatch_{f}" for f in features} <= set(CASES)
    reference = CASES[f"{PREFIX}tp1_pp8_dp1_smollm2_logitsmatch_zmq"]
    assert reference.prompts[0].startswith("Time travel to 2008") and len(reference.prompts) == 1
    assert reference.model_args["--num-tokens-to-generate"] == 30


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_is_batch_invariant_and_recorded_on_cpu(name):
    case = CASES[name]
    assert case.model_args.get("--batch-invariant") is True
    assert case.platforms["cpu"] == ("pass", "")
    golden = load_output(ROOT / "golden" / "cpu" / f"{name}.json", golden=True)
    assert golden["_provenance"]["platform"] == "cpu"
    assert [g["input_prompt"] for g in (golden[str(i)] for i in range(len(case.prompts)))] == list(
        case.prompts
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_dgx_h100_expects_pass_exactly_where_an_h100_golden_is_shipped(name):
    case = CASES[name]
    path = ROOT / "golden" / "dgx_h100" / f"{name}.json"
    if not path.exists():
        assert case.platforms["dgx_h100"][0] == "not_recorded"
        return
    assert case.platforms["dgx_h100"] == ("pass", "")
    golden = load_output(path, golden=True)
    provenance = golden["_provenance"]
    assert provenance["platform"] == "dgx_h100" and "H100" in provenance["device_name"]
    assert [g["input_prompt"] for g in (golden[str(i)] for i in range(len(case.prompts)))] == list(
        case.prompts
    )


def test_the_preemption_case_preempts():
    engine, records = _run_with_tiny(_feature("preemption"))
    assert engine.scheduler.num_preemptions > 0
    assert {len(r.generated_tokens) for r in records} == {10}


def test_the_chunked_prefill_case_splits_prompts_and_batches_many_requests():
    case = _feature("chunked_prefill")
    budget = case.model_args["--inference-max-batch-tokens"]
    tokenizer = resolve("tiny").tokenizer()
    lengths = [len(tokenizer.encode(p)) for p in case.prompts]
    assert sum(n > budget for n in lengths) >= 3 and min(lengths) < 8
    assert len(case.prompts) > case.model_args["--inference-max-requests"]


def test_the_stop_strings_case_stops_requests_at_different_steps():
    case = _feature("stop_strings")
    golden = load_output(ROOT / "golden" / "cpu" / f"{case.name}.json")
    stopped = [
        golden[r]
        for r in map(str, range(len(case.prompts)))
        if golden[r]["finish_reason"] == "stop_string"
    ]
    assert len(stopped) >= len(case.prompts) // 2
    assert len({len(r["generated_tokens"]) for r in stopped}) >= 3
    # The stop string itself is not part of the text.
    assert not any("." in r["generated_text"] or "\n" in r["generated_text"] for r in stopped)
