"""The builtin engine's command line for a case: which MODEL_ARGS pass through, and the rest.

A case's MODEL_ARGS use Megatron-LM's names, and Megatron test cases carry many flags that only
its training/inference scripts know (``--use-mcore-models``, ``--load``, ``--tokenizer-model``,
...). ``logitsmatch generate`` would reject those, so only the flags in ``PASSED_THROUGH`` reach
it; the others are *ignored* and the runner says so once in the run log. The flags in
``RUNNER_OWNED`` come from the run itself (prompts file, output path, deadline, device): a
case's ``--prompts``/``--prompt-file`` are read by the case loader and passed as the runner's
prompts file, its other runner-owned flags are ignored. ``mode_flags`` picks the engine's path
from the case's DRIVER: ``zmq`` runs through the ZeroMQ coordinator (``generate --zmq``). A test
checks these sets against ``logitsmatch generate``'s own parsers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from logitsmatch.harness.cases.fields import Driver, expand
from logitsmatch.harness.cases.platforms import Platform
from logitsmatch.harness.cases.schema import Case, model_args_argv

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
# Flags that mode_flags() reads from MODEL_ARGS for the ZMQ path (so they are not "ignored").
ZMQ_FLAGS = ("--incoming-requests-per-step",)
DEFAULT_REQUESTS_PER_STEP = 32
_DTYPE_FLAGS = ("--dtype", "--bf16")
# Read by the case loader: the runner passes the prompts in a file of its own.
_PROMPT_FLAGS = frozenset({"--prompts", "--prompt-file"})


def split_model_args(
    model_args: Mapping[str, Any], *, zmq: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """(the flags passed to the builtin engine, the names of the flags it ignores).

    ``zmq``: the case's DRIVER is zmq: the coordinator, whose ZMQ_FLAGS ``mode_flags`` passes.
    """
    passed = {k: v for k, v in model_args.items() if k in PASSED_THROUGH}
    used = PASSED_THROUGH | _PROMPT_FLAGS | (set(ZMQ_FLAGS) if zmq else set())
    ignored = [k for k in model_args if k not in used]
    return passed, ignored


def expand_vars(
    case: Case, model_args: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, Any]:
    """``${VAR}`` in string values replaced from ``environ``; a missing one is a CaseError."""

    def expand_value(flag: str, value: Any) -> Any:
        if isinstance(value, list):
            return [expand_value(flag, v) for v in value]
        if not isinstance(value, str):
            return value
        return expand(value, environ, source=case.source, field=f"MODEL_ARGS.{flag}")

    return {flag: expand_value(flag, value) for flag, value in model_args.items()}


def mode_flags(case: Case) -> list[str]:
    """How the builtin engine is driven: DRIVER ``zmq`` goes through the ZeroMQ coordinator
    (``generate --zmq``), which submits ``--incoming-requests-per-step`` requests at a time
    (MODEL_ARGS, default 32) like Megatron-LM's coordinator driver; ``in-process`` runs the
    requests in the engine's own loop."""
    if case.driver is not Driver.ZMQ:
        return []
    per_step = case.model_args.get(ZMQ_FLAGS[0], DEFAULT_REQUESTS_PER_STEP)
    return ["--zmq", ZMQ_FLAGS[0], str(per_step)]


def builtin_argv(
    platform: Platform,
    model_args: Mapping[str, Any],
    *,
    prompt_file: Path,
    output_path: Path,
    run_dir: Path,
    deadline_s: float,
    mode: Sequence[str] = (),
) -> list[str]:
    """``python -m logitsmatch.cli generate [mode] ...`` for ``model_args`` (already filtered).

    The platform picks the device and, unless the case names a dtype, the dtype. ``mode``:
    ``mode_flags(case)`` for the case's own requests.
    """
    argv = [sys.executable, "-m", "logitsmatch.cli", "generate", *mode]
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
    """The engine's environment: this process's, then the case's ENV_VARS in order, each with
    ``${VAR}`` expanded from what is set so far; an unset one is a CaseError naming it."""
    env = dict(os.environ if base is None else base)
    for name, value in case.env_vars.items():
        env[name] = expand(value, env, source=case.source, field=f"ENV_VARS.{name}")
    env["PYTHONUNBUFFERED"] = "1"
    return env
