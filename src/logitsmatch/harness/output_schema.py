"""Validate an output JSON (a run's or a golden's) and name the file and key of any problem."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from logitsmatch.harness.tolerances import RUN_METRICS


class OutputFormatError(ValueError):
    """An output/golden JSON whose structure or values are wrong; names the file and key."""


def validate_output(doc: Any, source: str, *, allow_nonfinite: bool) -> None:
    """Check the DESIGN.md output-JSON contract; raise OutputFormatError at the first problem.

    ``allow_nonfinite``: a run's output may hold NaN/inf (the comparison fails it, with the
    position); a golden may not.
    """
    if not isinstance(doc, Mapping):
        raise OutputFormatError(
            f"{source}: expected a JSON object of request id -> result, got {type(doc).__name__}"
        )
    check = _Checker(source, allow_nonfinite)
    for key, value in doc.items():
        if key == "_provenance":
            check.kind(value, Mapping, "an object", key)
        elif key.startswith("_"):
            continue
        elif key in RUN_METRICS:
            check.number_or_numbers(value, key)
        else:
            check.request(key, value)


def first_nonfinite(doc: Any, path: str = "") -> str | None:
    """The key path of the first NaN/inf number anywhere in ``doc``, or None."""
    if isinstance(doc, float) and not math.isfinite(doc):
        return path or "<top>"
    if isinstance(doc, Mapping):
        items = ((f"{path}.{k}" if path else _top_key(k), v) for k, v in doc.items())
    elif isinstance(doc, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(doc))
    else:
        return None
    for sub, value in items:
        found = first_nonfinite(value, sub)
        if found:
            return found
    return None


def _top_key(key: str) -> str:
    # why: request ids are quoted ('0'.logprobs) as validate_output names them; run metrics not.
    return key if key in RUN_METRICS or key.startswith("_") else repr(key)


class _Checker:
    def __init__(self, source: str, allow_nonfinite: bool) -> None:
        self.source, self.allow_nonfinite = source, allow_nonfinite

    def fail(self, where: str, expected: str, value: Any) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise OutputFormatError(f"{self.source}: {where}: expected {expected}, got {shown}")

    def kind(self, value: Any, types: Any, expected: str, where: str) -> None:
        if not isinstance(value, types) or (isinstance(value, bool) and types is not bool):
            self.fail(where, expected, value)

    def number(self, value: Any, where: str) -> None:
        self.kind(value, (int, float), "a number", where)
        if not self.allow_nonfinite and not math.isfinite(value):
            raise OutputFormatError(
                f"{self.source}: {where}: {value} is not allowed in a golden "
                "(re-record it from a run without NaN/inf)"
            )

    def numbers(self, value: Any, where: str) -> None:
        self.kind(value, list, "a list of numbers", where)
        for i, item in enumerate(value):
            self.number(item, f"{where}[{i}]")

    def number_or_numbers(self, value: Any, where: str) -> None:
        if isinstance(value, list):
            if not value:
                self.fail(where, "a number or a non-empty list of numbers", value)
            self.numbers(value, where)
        else:
            self.number(value, where)

    def request(self, rid: str, value: Any) -> None:
        where = repr(rid)
        self.kind(value, Mapping, "an object with generated_tokens/logprobs/generated_text", where)
        for field in ("input_prompt", "generated_text", "finish_reason", "error"):
            if field in value:
                self.kind(value[field], str, "a string", f"{where}.{field}")
        if "latency" in value:
            self.number(value["latency"], f"{where}.latency")
        if "generated_tokens" in value:
            tokens = value["generated_tokens"]
            self.kind(tokens, list, "a list of token ids", f"{where}.generated_tokens")
            for i, token in enumerate(tokens):
                self.kind(token, int, "an int token id", f"{where}.generated_tokens[{i}]")
        if "logprobs" in value:
            self.numbers(value["logprobs"], f"{where}.logprobs")
        if "top_n_logprobs" in value:
            self.top_n(value["top_n_logprobs"], f"{where}.top_n_logprobs")

    def top_n(self, value: Any, where: str) -> None:
        self.kind(value, list, "a list (one per generated token) of {token: logprob}", where)
        for i, entry in enumerate(value):
            self.kind(entry, Mapping, "an object of token -> logprob", f"{where}[{i}]")
            for token, logprob in entry.items():
                self.number(logprob, f"{where}[{i}][{token!r}]")
