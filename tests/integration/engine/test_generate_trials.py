"""``logitsmatch generate`` writes Megatron-LM's output shape: --inference-repeat-n trials,
--output-every-n-results, the per-request fields and lifetime_prefill_token_count, in process
(one rank and several) and through the ZMQ coordinator."""

import json
import subprocess
import sys

import pytest

from logitsmatch.engine.generate_args import generate_parser as parser
from logitsmatch.engine.loader import resolve
from logitsmatch.record import REQUEST_FIELDS

CONTENT_FIELDS = [spec.name for spec in REQUEST_FIELDS if not spec.timing]
PROMPTS = ["a b c", "hello there", "x", "one two three four", "five six"]
FLAGS = [
    "--model",
    "tiny",
    "--num-tokens-to-generate",
    "4",
    "--return-log-probs",
    "--top-n-logprobs",
    "3",
    "--return-prompt-top-n-logprobs",
    "--termination-id",
    "-1",
    "--batch-invariant",  # why: the same numbers whatever the layout or batch
]
MULTI_RANK = ["--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size", "2"]
MULTI_RANK += ["--data-parallel-size", "2"]


def generate(tmp_path, name: str, *flags: str, code: int = 0) -> tuple[dict, str]:
    out = tmp_path / f"{name}.json"
    cmd = [sys.executable, "-m", "logitsmatch.cli", "generate", *FLAGS, "--prompts", *PROMPTS]
    cmd += ["--output-path", str(out), "--run-dir", str(tmp_path / name), *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == code, proc.stderr[-3000:]
    return (json.loads(out.read_text()) if code == 0 else {}), proc.stderr


@pytest.fixture(scope="module")
def once(tmp_path_factory) -> dict:
    """One trial, every request written: the reference."""
    return generate(tmp_path_factory.mktemp("once"), "once")[0]


def prompt_lengths() -> list[int]:
    tokenizer = resolve("tiny").tokenizer()
    return [len(tokenizer.encode(p)) for p in PROMPTS]


def check_fields(doc: dict, reference: dict, ids: list[str]) -> None:
    assert [k for k in doc if k.isdigit()] == ids
    lengths = prompt_lengths()
    for key in ids:
        entry = doc[key]
        for field in CONTENT_FIELDS:
            assert entry.get(field) == reference[key].get(field), f"request {key}: {field}"
        assert entry["logprobs"] == entry["prompt_logprobs"] + entry["generated_logprobs"]
        assert len(entry["prompt_logprobs"]) == lengths[int(key)] - 1
        assert len(entry["prompt_top_n_logprobs"]) == lengths[int(key)] - 1
        assert len(entry["generated_logprobs"]) == len(entry["generated_tokens"]) == 4
        assert 0 < entry["ttft"] <= entry["latency"]
        assert isinstance(entry["step_count"], int) and entry["step_count"] >= 4


def test_one_trial_writes_every_field_and_the_prefill_count(once):
    check_fields(once, once, ["0", "1", "2", "3", "4"])
    assert len(once["throughput"]) == 1
    # no preemption: each prompt prefilled once
    assert once["lifetime_prefill_token_count"] == sum(prompt_lengths())
    # Megatron's step_count: the engine's steps when the file is written, in every entry
    assert {once[k]["step_count"] for k in "01234"} == {4}


def test_repeated_trials_write_the_last_one_and_every_throughput(tmp_path, once):
    doc, _ = generate(
        tmp_path, "repeat", "--inference-repeat-n", "3", "--output-every-n-results", "2"
    )
    check_fields(doc, once, ["0", "2", "4"])
    assert len(doc["throughput"]) == 3 and all(t > 0 for t in doc["throughput"])
    # each trial starts from engine.reset(), as in Megatron: the counts are the last trial's
    assert doc["lifetime_prefill_token_count"] == once["lifetime_prefill_token_count"]
    assert [doc[k]["step_count"] for k in "024"] == [once[k]["step_count"] for k in "024"]


def test_multi_rank_trials_match_one_process(tmp_path, once):
    flags = [*MULTI_RANK, "--inference-repeat-n", "2", "--output-every-n-results", "2"]
    doc, _ = generate(tmp_path, "tp2pp2dp2", *flags)
    check_fields(doc, once, ["0", "2", "4"])
    assert len(doc["throughput"]) == 2
    # summed over the two replicas, which split the requests between them
    assert doc["lifetime_prefill_token_count"] == once["lifetime_prefill_token_count"]


def test_zmq_writes_the_same_fields_for_every_second_request(tmp_path, once):
    flags = ["--zmq", "--no-stagger-lengths", "--pipeline-model-parallel-size", "2"]
    doc, _ = generate(tmp_path, "zmq", *flags, "--output-every-n-results", "2")
    check_fields(doc, once, ["0", "2", "4"])
    assert len(doc["throughput"]) == 1


def test_zmq_refuses_to_repeat(tmp_path):
    _, stderr = generate(tmp_path, "zmq-repeat", "--zmq", "--inference-repeat-n", "2", code=2)
    assert "--inference-repeat-n 2: the ZMQ driver does not repeat" in stderr
    assert not (tmp_path / "zmq-repeat").exists()  # refused before anything started


@pytest.mark.parametrize("flag", ["--inference-repeat-n", "--output-every-n-results"])
@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_counts_must_be_positive(capsys, flag, value):
    argv = ["--prompts", "x", "--output-path", "o.json", flag, value]
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(argv)
    assert exit_.value.code == 2
    assert f"{flag}: expected an int >= 1, got '{value}'" in capsys.readouterr().err


def test_prompt_top_n_needs_top_n(tmp_path):
    cmd = [sys.executable, "-m", "logitsmatch.cli", "generate", "--model", "tiny"]
    cmd += ["--prompts", "x", "--return-prompt-top-n-logprobs"]
    cmd += ["--output-path", str(tmp_path / "o.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "return_prompt_top_n_logprobs needs top_n_logprobs >= 1" in proc.stderr


def test_help_lists_the_new_flags():
    text = parser().format_help()
    for flag in (
        "--inference-repeat-n",
        "--output-every-n-results",
        "--return-prompt-top-n-logprobs",
    ):
        assert flag in text
