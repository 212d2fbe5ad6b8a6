"""Helpers of the end-to-end tests: a small project (cases/ + golden/) whose case runs the
synthetic "tiny" model, and the real `logitsmatch` command run in it."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CASE = "tiny_e2e"
PROMPTS = ["The quick brown fox jumps over the lazy dog", "Once upon a time"]
MODEL_ARGS = {
    "--model": "tiny",
    "--batch-invariant": True,
    "--num-tokens-to-generate": 6,
    "--top_k": 1,
    "--return-log-probs": True,
    "--top-n-logprobs": 5,
    "--prompts": PROMPTS,
}


def write_case(cases_dir: Path, name: str = CASE, engine: str | None = None, **keys) -> Path:
    """cases_dir/<name>.yaml: the tiny case, optionally with an ENGINE and other keys."""
    doc = {
        "DRIVER": "in-process",
        "MODEL_ARGS": MODEL_ARGS,
        "PLATFORMS": {"cpu": {"expected": "pass"}},
        **keys,
    }
    if engine is not None:
        doc["ENGINE"] = engine
    cases_dir.mkdir(parents=True, exist_ok=True)
    path = cases_dir / f"{name}.yaml"
    path.write_text(json.dumps(doc, indent=1))  # why: JSON is YAML, and quoting stays exact
    return path


def logitsmatch(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real command, in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "logitsmatch.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "LOGITSMATCH_RUN_DIR": "", "GITHUB_STEP_SUMMARY": ""},
    )
