"""The builtin engine's command line for a case, its environment, and ``${VAR}`` expansion.

Which MODEL_ARGS reach ``logitsmatch generate`` is the flag table's call
(``flag_table.py``: ``Case.flags.engine_args``) plus the model binding's flags
(``binding.py``: ``Case.binding.engine_args``); this module turns them into argv. The run itself
owns the prompts file, the output path, the deadline and the device. ``mode_flags`` picks the
engine's path from the case's DRIVER: ``zmq`` runs through the ZeroMQ coordinator
(``generate --zmq``).
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

# MODEL_ARGS that only the ZMQ run takes (generate --zmq), passed as they are.
COORDINATOR_FLAGS = (
    "--inference-dynamic-batching-prefix-caching-coordinator-policy",
    "--inference-dynamic-batching-prefix-caching-routing-alpha",
)
_DTYPE_FLAGS = ("--dtype", "--bf16")


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
    (``generate --zmq``, bursts of --incoming-requests-per-step, 32 by default, like Megatron-
    LM's coordinator driver), routed as ``COORDINATOR_FLAGS`` say; ``in-process`` runs the
    requests in the engine's own loop."""
    if case.driver is not Driver.ZMQ:
        return []
    routing = [
        word
        for flag in COORDINATOR_FLAGS
        if flag in case.model_args
        for word in (flag, str(case.model_args[flag]))
    ]
    return ["--zmq", *routing]


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
