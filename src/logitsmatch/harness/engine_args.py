"""The builtin engine's command line for a case: which MODEL_ARGS pass through, and the rest.

A case's MODEL_ARGS use Megatron-LM's names, and Megatron test cases carry many flags that only
its training/inference scripts know (``--use-mcore-models``, ``--load``, ``--tokenizer-model``,
...). ``logitsmatch generate`` would reject those, so only the flags in ``PASSED_THROUGH`` reach
it; the others are *ignored* and the runner says so once in the run log. The flags in
``RUNNER_OWNED`` come from the run itself (prompts file, output path, deadline, device) and are
ignored in a case too. A test checks both sets against ``logitsmatch generate``'s own parser.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from logitsmatch.harness.case import Case, model_args_argv
from logitsmatch.harness.case_fields import CaseError
from logitsmatch.harness.platform import Platform

# Flags of `logitsmatch generate` that a case may set (Megatron's spelling where both exist).
PASSED_THROUGH = frozenset(
    {
        "--model",
        "--dtype",
        "--bf16",
        "--seed",
        "--synthetic-seed",
        "--tensor-model-parallel-size",
        "--pipeline-model-parallel-size",
        "--data-parallel-size",
        "--pipeline-layer-split",
        "--batch-invariant",
        "--deterministic-mode",
        "--collective-timeout-s",
        "--inference-max-seq-length",
        "--kv-cache-tokens",
        "--kv-block-size",
        "--inference-max-requests",
        "--inference-max-batch-tokens",
        "--no-chunked-prefill",
        "--num-tokens-to-generate",
        "--top-k",
        "--top_k",
        "--top-p",
        "--top_p",
        "--temperature",
        "--termination-id",
        "--stop-strings",
        "--return-log-probs",
        "--top-n-logprobs",
        "--add-bos",
    }
)
# Set by the runner for every run; a case's value for them is ignored.
RUNNER_OWNED = frozenset(
    {"--prompts", "--prompt-file", "--output-path", "--run-dir", "--deadline-s", "--device"}
)
_DTYPE_FLAGS = ("--dtype", "--bf16")
_VAR = re.compile(r"\$\{(\w+)\}")


def split_model_args(model_args: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the flags passed to the builtin engine, the names of the flags it ignores)."""
    passed = {k: v for k, v in model_args.items() if k in PASSED_THROUGH}
    ignored = [k for k in model_args if k not in PASSED_THROUGH]
    return passed, ignored


def expand_vars(
    case: Case, model_args: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, Any]:
    """``${VAR}`` in string values replaced from ``environ``; a missing one is a CaseError."""

    def expand(flag: str, value: Any) -> Any:
        if isinstance(value, list):
            return [expand(flag, v) for v in value]
        if not isinstance(value, str):
            return value
        missing = [name for name in _VAR.findall(value) if name not in environ]
        if missing:
            raise CaseError(
                f"{case.source}: MODEL_ARGS.{flag}: ${{{missing[0]}}} is not set in the "
                "environment (set it, or in the case's ENV_VARS)"
            )
        return _VAR.sub(lambda m: environ[m.group(1)], value)

    return {flag: expand(flag, value) for flag, value in model_args.items()}


def mode_flags(case: Case) -> list[str]:
    """How the builtin engine is driven: today `generate` runs the requests itself.

    The seam for the ZeroMQ path: when `generate --zmq` lands, cases named ``*_zmq`` return
    ``["--zmq", "--incoming-requests-per-step", K]`` here and nothing else changes.
    """
    del case
    return []


def builtin_argv(
    case: Case,
    platform: Platform,
    model_args: Mapping[str, Any],
    *,
    prompt_file: Path,
    output_path: Path,
    run_dir: Path,
    deadline_s: float,
) -> list[str]:
    """``python -m logitsmatch.cli generate ...`` for ``model_args`` (already filtered).

    The platform picks the device and, unless the case names a dtype, the dtype.
    """
    argv = [sys.executable, "-m", "logitsmatch.cli", "generate", *mode_flags(case)]
    argv += model_args_argv(model_args)
    argv += ["--device", platform.device]
    if not any(flag in model_args for flag in _DTYPE_FLAGS):
        argv += ["--dtype", platform.dtype]
    argv += [
        "--prompt-file",
        str(prompt_file),
        "--output-path",
        str(output_path),
        "--run-dir",
        str(run_dir),
        "--deadline-s",
        f"{deadline_s:.0f}",
    ]
    return argv


def run_environ(case: Case, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The engine's environment: this process's, then the case's ENV_VARS (``${VAR}`` expanded)."""
    env = dict(os.environ if base is None else base)
    for name, value in case.env_vars.items():
        env[name] = _VAR.sub(lambda m: env.get(m.group(1), ""), value)
    env["PYTHONUNBUFFERED"] = "1"
    return env
