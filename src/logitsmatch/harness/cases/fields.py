"""Validators for the fields of a case YAML; each error names the file, the key and the form.

Also the case's vocabularies (``Expected``, ``Driver``) and the one ``${VAR}`` expander
(``expand``), which every field that takes variables goes through.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logitsmatch.harness.text_enum import TextEnum


class CaseError(ValueError):
    """A case file that does not follow the schema (see ``logitsmatch.harness.cases.schema``)."""


class Expected(TextEnum):
    """``PLATFORMS.<platform>.expected``: what a run of the case on that platform should give."""

    PASS = "pass"  # compare with the golden
    NOT_RECORDED = "not_recorded"  # no golden yet: skipped with the reason, never passed
    XFAIL = "xfail"  # known to fail: a pass is reported as unexpected
    SKIP = "skip"  # not run


class Driver(TextEnum):
    """``DRIVER``: how the builtin engine gets the case's requests."""

    IN_PROCESS = "in-process"  # the engine's own loop (``logitsmatch generate``)
    ZMQ = "zmq"  # the ZeroMQ coordinator (``logitsmatch generate --zmq``)


PLATFORM_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
ENGINE_PLACEHOLDERS = (
    "output_path",
    "model_args",
    "nproc",
    "tp",
    "pp",
    "dp",
    "case",
    "platform",
    "run_dir",
)
# A Megatron case folder says how it is driven only by its name: `..._zmq`.
MEGATRON_ZMQ_SUFFIX = "_zmq"
VAR_RE = re.compile(r"\$\{(\w+)\}")


def fail(source: Path, key: str, expected: str, value: Any) -> CaseError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return CaseError(f"{source}: {key}: expected {expected}, got {shown}")


def choice(source: Path, key: str, value: Any, choices: Collection[str]) -> str:
    """``value`` when it is one of ``choices``; else a CaseError naming the nearest one."""
    if isinstance(value, str) and value in choices:
        return value
    # why: cutoff 0 always finds one, so even a far-off value gets the closest valid word.
    (nearest,) = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.0)
    raise CaseError(f"{fail(source, key, ' or '.join(choices), value)}; did you mean {nearest!r}?")


def expand(
    text: str, environ: Mapping[str, str], *, source: Path, field: str, what: str = ""
) -> str:
    """``text`` with every ``${VAR}`` replaced from ``environ`` (the one ``${VAR}`` expander).

    An unset variable is a CaseError naming the file, the field and the variable; ``what``
    (e.g. "a path") phrases the error as the form the field expects.
    """
    missing = [name for name in VAR_RE.findall(text) if name not in environ]
    if missing:
        if what:
            raise fail(
                source, field, f"{what} whose ${{{missing[0]}}} is set in the environment", text
            )
        raise CaseError(
            f"{source}: {field}: ${{{missing[0]}}} is not set in the environment "
            "(set it, or in the case's ENV_VARS)"
        )
    return VAR_RE.sub(lambda m: environ[m.group(1)], text)


def positive_int(source: Path, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(source, key, "an integer >= 1", value)
    return value


def positive_number(source: Path, key: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise fail(source, key, "a number > 0 (seconds)", value)
    return float(value)


def boolean(source: Path, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise fail(source, key, "true or false", value)
    return value


def text(source: Path, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise fail(source, key, "a non-empty string", value)
    return value


def mapping(source: Path, key: str, value: Any, form: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise fail(source, key, f"a mapping {form}", value)
    return value


def env_vars(source: Path, value: Any) -> dict[str, str]:
    """ENV_VARS: NAME -> scalar; stored as the strings the ranks' environment gets."""
    out = {}
    for name, item in mapping(source, "ENV_VARS", value, "of NAME: value").items():
        if isinstance(item, bool):
            out[name] = "true" if item else "false"
        elif isinstance(item, (str, int, float)):
            out[name] = str(item)
        else:
            raise fail(source, f"ENV_VARS.{name}", "a string or number", item)
    return out


def model_args(source: Path, value: Any) -> dict[str, Any]:
    """MODEL_ARGS: ``--flag: value`` as in Megatron-LM; true = bare flag, false/null = omitted."""
    out = {}
    for flag, item in mapping(source, "MODEL_ARGS", value, "of --flag: value").items():
        if not flag.startswith("--"):
            raise fail(source, f"MODEL_ARGS.{flag}", "a flag starting with '--'", flag)
        scalars = item if isinstance(item, list) else [item]
        if item is not None and not all(isinstance(s, (str, int, float, bool)) for s in scalars):
            raise fail(source, f"MODEL_ARGS.{flag}", "a string, number, bool or list of them", item)
        out[flag] = item
    return out


def parallel_size(source: Path, args: Mapping[str, Any], flag: str) -> int | None:
    if flag not in args:
        return None
    return positive_int(source, f"MODEL_ARGS.{flag}", args[flag])


def platforms(
    source: Path, value: Any, known: Collection[str] | None = None
) -> dict[str, tuple[Expected, str]]:
    """PLATFORMS: name -> {expected: pass|not_recorded|xfail|skip, reason: why (not for pass)}.

    ``known``: the platform names a case may list (the platform table's), or None to take any
    well-formed name (a Megatron folder's goldens name platforms of their own).
    """
    out = {}
    form = "of platform: {expected: " + "|".join(Expected.words()) + ", reason: ...}"
    for name, spec in mapping(source, "PLATFORMS", value, form).items():
        key = f"PLATFORMS.{name}"
        if not PLATFORM_RE.match(name):
            raise fail(source, key, "a platform name of lowercase letters, digits and _", name)
        if known is not None and name not in known:
            (nearest,) = difflib.get_close_matches(name, list(known), n=1, cutoff=0.0)
            raise CaseError(
                f"{source}: {key}: expected a platform of the platform table "
                f"({' or '.join(known)}), got {name!r}; did you mean {nearest!r}? "
                "(a new platform is a row in src/logitsmatch/harness/cases/platforms.py)"
            )
        spec = mapping(source, key, spec, "{expected: ..., reason: ...}")
        unknown = set(spec) - {"expected", "reason"}
        if unknown:
            raise fail(
                source,
                f"{key}.{sorted(unknown)[0]}",
                "only the keys expected and reason",
                sorted(unknown)[0],
            )
        expected = Expected(
            choice(source, f"{key}.expected", spec.get("expected", "pass"), Expected.words())
        )
        reason = spec.get("reason", "")
        if not isinstance(reason, str) or (expected != Expected.PASS and not reason.strip()):
            raise fail(source, f"{key}.reason", f"a string saying why it is {expected}", reason)
        out[name] = (expected, reason)
    if not out:
        raise fail(
            source, "PLATFORMS", "at least one platform, e.g. {cpu: {expected: pass}}", value
        )
    return out


def driver(source: Path, raw: Mapping[str, Any], name: str, *, required: bool) -> Driver:
    """DRIVER: ``in-process`` or ``zmq``. ``required`` for our case files; a Megatron folder
    without it is driven as its name says (``*_zmq``: the ZeroMQ coordinator)."""
    if "DRIVER" in raw:
        return Driver(choice(source, "DRIVER", raw["DRIVER"], Driver.words()))
    if required:
        raise CaseError(
            f"{source}: DRIVER: missing: expected {' or '.join(Driver.words())} (the builtin "
            "engine's own loop, or the ZeroMQ coordinator: generate --zmq)"
        )
    return Driver.ZMQ if name.endswith(MEGATRON_ZMQ_SUFFIX) else Driver.IN_PROCESS


def engine(source: Path, value: Any, args: Mapping[str, Any]) -> str:
    """ENGINE: ``builtin`` or a command template whose placeholders are ENGINE_PLACEHOLDERS."""
    value = text(source, "ENGINE", value)
    if value == "builtin":
        return value
    form = "builtin or a command with placeholders {" + "} {".join(ENGINE_PLACEHOLDERS) + "}"
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
    except ValueError as exc:
        raise fail(source, "ENGINE", f"{form} ({exc})", value) from None
    bad = [n for n in names if n not in ENGINE_PLACEHOLDERS]
    if bad:
        raise fail(source, "ENGINE", f"{form}; unknown placeholder {{{bad[0]}}}", value)
    if "output_path" not in names and "--output-path" not in args:
        raise fail(
            source,
            "ENGINE",
            "a command with {output_path} (or MODEL_ARGS --output-path) "
            "so that the harness finds the output JSON",
            value,
        )
    return value


# Megatron-LM's ShareGPT prompts are not shipped (licence, size): with DATA_PATH unset, its
# folders read seeded synthetic chat requests instead (tools/make_prompt_stand_in.py), and say so.
PROMPT_STAND_INS = {
    "${DATA_PATH}/text/sharegpt-vicuna/filtered/processed.jsonl": Path(__file__).parent
    / "data"
    / "sharegpt_stand_in.jsonl",
}


@dataclass(frozen=True)
class PromptFile:
    """A case's ``--prompt-file`` (its ``${VAR}``s unexpanded) and ``--prompt-file-num-truncate``.

    Read when the case runs (``read``), so that a folder whose data path is not set here still
    loads; read at load too when its variables are set, so that a bad file fails early.
    """

    source: Path
    name: str
    limit: int | None = None

    @property
    def stand_in(self) -> Path | None:
        """The shipped file read in place of this one when its variables are not set."""
        return PROMPT_STAND_INS.get(self.name)

    def uses_stand_in(self, environ: Mapping[str, str]) -> bool:
        return self.stand_in is not None and not self.resolvable(environ)

    def read(self, environ: Mapping[str, str]) -> tuple[str, ...]:
        """The prompts; a CaseError naming the case, the field and the value when it cannot."""
        key = "MODEL_ARGS.--prompt-file"
        if self.uses_stand_in(environ):
            assert self.stand_in is not None
            path = self.stand_in
        else:
            path = Path(expand(self.name, environ, source=self.source, field=key, what="a path"))
        path = path if path.is_absolute() else self.source.parent / path
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise fail(
                self.source, key, f"a readable JSONL file ({exc.strerror}: {path})", self.name
            ) from None
        out = [p for p in (_prompt_line(path, n, line) for n, line in enumerate(lines, 1)) if p]
        if not out:
            raise CaseError(f"{path}: no prompt in the file (from {self.source} {key})")
        return tuple(out[: self.limit])

    def resolvable(self, environ: Mapping[str, str]) -> bool:
        return all(name in environ for name in VAR_RE.findall(self.name))


def prompts(
    source: Path, raw: Mapping[str, Any], args: Mapping[str, Any]
) -> tuple[str, ...] | PromptFile:
    """The requests' prompts: PROMPTS, MODEL_ARGS --prompts or --prompt-file (exactly one)."""
    given = [
        k
        for k, present in (
            ("PROMPTS", "PROMPTS" in raw),
            ("--prompts", "--prompts" in args),
            ("--prompt-file", "--prompt-file" in args),
        )
        if present
    ]
    if not given:
        raise CaseError(
            f'{source}: PROMPTS: missing prompt: expected PROMPTS: ["text", ...] '
            'or MODEL_ARGS --prompts: "text" or --prompt-file: prompts.jsonl'
        )
    if len(given) > 1:
        raise CaseError(
            f"{source}: {given[1]}: the prompts are already given by {given[0]}; "
            "expected exactly one of PROMPTS, --prompts, --prompt-file"
        )
    if "--prompt-file-num-truncate" in args and given[0] != "--prompt-file":
        raise CaseError(f"{source}: MODEL_ARGS.--prompt-file-num-truncate: only with --prompt-file")
    if given[0] == "--prompt-file":
        name = text(source, "MODEL_ARGS.--prompt-file", args["--prompt-file"])
        limit = args.get("--prompt-file-num-truncate")
        if limit is not None:
            limit = positive_int(source, "MODEL_ARGS.--prompt-file-num-truncate", limit)
        found = PromptFile(source, name, limit)
        return found.read(os.environ) if found.resolvable(os.environ) else found
    key = "PROMPTS" if given[0] == "PROMPTS" else "MODEL_ARGS.--prompts"
    value = raw["PROMPTS"] if given[0] == "PROMPTS" else args["--prompts"]
    items = [value] if isinstance(value, str) and key != "PROMPTS" else value
    if not isinstance(items, list) or not items or not all(isinstance(p, str) and p for p in items):
        raise fail(source, key, "a non-empty list of non-empty prompt strings", value)
    return tuple(items)


def _prompt_line(path: Path, number: int, line: str) -> str | None:
    """One JSONL line's prompt: a JSON string, or an object's "prompt" or "text" (Megatron's)."""
    if not line.strip():
        return None
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CaseError(
            f"{path}:{number}: not JSON ({exc.msg}); expected a JSON string or "
            '{"prompt": ...} a line'
        ) from None
    if isinstance(item, Mapping):
        item = item.get("prompt", item.get("text"))
    if not isinstance(item, str) or not item:
        raise CaseError(
            f"{path}:{number}: expected a non-empty string or an object with a "
            "'prompt' (or 'text') string"
        )
    return item
