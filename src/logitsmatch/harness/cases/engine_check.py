"""A builtin-engine case's flags, checked at load by the engine's own parser and validators.

The flag table (``flag_table.py``) says which MODEL_ARGS reach ``logitsmatch generate``; this
checks what they say: values the engine's argparse refuses (``--num-tokens-to-generate: -1``),
settings its options or sampling refuse (``top_p`` with greedy ``top_k``), and a model name it
does not know. So a bad value fails when the case loads (exit 2, naming the file, the
MODEL_ARGS flag and the value), not minutes later inside a rank. Plain Python: the engine's
parser and validators need no torch.

Values that still hold a ``${VAR}`` are left to the run, which expands them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from logitsmatch.engine.generate_args import engine_options, generate_parser, sampling_for
from logitsmatch.engine.presets import PRESETS
from logitsmatch.harness.cases.fields import VAR_RE, CaseError

# argparse: "argument --top-k/--top_k: invalid int value: 'x'"
_ARGPARSE_RE = re.compile(r"^argument (\S+): (.*)$", re.S)
# the engine's validators: "num_tokens_to_generate must be ...", "EngineOptions.dtype must ..."
_FIELD_RE = re.compile(r"^(?:\w+\.)?([a-z][a-z0-9_]*)[ =]")


class _Refused(Exception):
    """argparse refused the flags (raised instead of exiting)."""


def check_engine_args(
    source: Path, args: Mapping[str, Any], origin: Mapping[str, str], argv: list[str]
) -> None:
    """Raise CaseError when the engine would refuse ``argv`` (``args`` as words, without the
    ``${VAR}`` ones); ``origin`` maps an engine flag back to the case's MODEL_ARGS flag."""
    parser = generate_parser()

    def refuse(message: str) -> NoReturn:
        raise _Refused(message)

    parser.error = refuse  # type: ignore[method-assign]
    try:
        # why these two: the run owns the prompts file and the output (and the device)
        parsed = parser.parse_args([*argv, "--prompt-file", "p.jsonl", "--output-path", "o.json"])
    except _Refused as exc:
        message = str(exc)
        match = _ARGPARSE_RE.match(message)
        if match is None:
            raise CaseError(f"{source}: MODEL_ARGS: the engine refuses them: {message}") from None
        names, why = match.groups()
        flag = next((n for n in names.split("/") if n in args), names)
        raise _named(source, flag, args, origin, why) from None
    _check_model(source, parsed.model, origin)
    try:
        engine_options(parsed)
        sampling_for(parsed, 0)
    except ValueError as exc:
        match = _FIELD_RE.match(str(exc))
        flag = "--" + match.group(1).replace("_", "-") if match else ""
        raise _named(source, flag, args, origin, str(exc)) from None


def without_vars(args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` less the flags whose value still holds a ``${VAR}`` (the run expands them)."""
    return {flag: value for flag, value in args.items() if not VAR_RE.search(str(value))}


def _named(
    source: Path, flag: str, args: Mapping[str, Any], origin: Mapping[str, str], why: str
) -> CaseError:
    # why normalised: argparse and the validators spell `--top-k`, a case may write `--top_k`
    given = {f.replace("_", "-"): f for f in args}
    flag = given.get(flag.replace("_", "-"), flag)
    if flag in args:
        return CaseError(f"{source}: MODEL_ARGS.{origin.get(flag, flag)}: {args[flag]!r}: {why}")
    return CaseError(f"{source}: MODEL_ARGS: the engine refuses them: {why}")


def _check_model(source: Path, model: str, origin: Mapping[str, str]) -> None:
    """A model name must be a preset; a .gguf file or a folder is checked when the run loads
    it (it may exist only where the case runs)."""
    if model in PRESETS or model.endswith(".gguf") or "/" in model or Path(model).is_dir():
        return
    (nearest,) = difflib.get_close_matches(model, list(PRESETS), n=1, cutoff=0.0)
    flag = origin.get("--model", "--model")
    raise CaseError(
        f"{source}: MODEL_ARGS.{flag}: {model!r} is not a known model; did you mean "
        f"{nearest!r}? (presets: {', '.join(PRESETS)}; or a .gguf file or an HF folder)"
    )
