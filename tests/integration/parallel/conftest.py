"""Run `logitsmatch generate` as a user would: a real subprocess, real gloo ranks
(engine/launch.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROMPTS = [
    "Time travel to 2008, and go to a bar or a club",
    "def add(a, b):",
    "<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n",
    "The",
]


def generate(
    tmp: Path,
    name: str,
    *flags: str,
    model: str = "smollm2-135m",
    tokens: int = 6,
    timeout: float = 300,
    prompts: list[str] = PROMPTS,
) -> dict:
    out = tmp / f"{name}.json"
    cmd = [
        sys.executable,
        "-m",
        "logitsmatch.cli",
        "generate",
        "--model",
        model,
        "--prompts",
        *prompts,
        "--num-tokens-to-generate",
        str(tokens),
        "--return-log-probs",
        "--termination-id",
        "-1",
        "--output-path",
        str(out),
        "--run-dir",
        str(tmp / name),
        *flags,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def assert_same(reference: dict, other: dict, tol: float) -> None:
    for key in [k for k in reference if k.isdigit()]:
        assert other[key]["generated_tokens"] == reference[key]["generated_tokens"], key
        diffs = [
            abs(a - b)
            for a, b in zip(reference[key]["logprobs"], other[key]["logprobs"], strict=True)
        ]
        assert max(diffs) <= tol, (key, max(diffs))


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("layouts")
