"""Validate an output JSON (a run's or a golden's) and name the file and key of any problem.

Which fields exist and their kinds come from ``logitsmatch.record``; this module checks each
value element by element so that an error names the exact position.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from logitsmatch.record import REQUEST_FIELDS, RUN_FIELD_NAMES, RUN_FIELDS, Kind

_RUN_KINDS = {spec.name: spec.kind for spec in RUN_FIELDS}


class OutputFormatError(ValueError):
    """An output/golden JSON whose structure or values are wrong; names the file and key."""


def validate_output(doc: Any, source: str, *, allow_nonfinite: bool) -> None:
    """Check the output-JSON contract (README.md, "The engine": Output JSON, Megatron-LM's
    format); raise OutputFormatError at the first problem.

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
        elif key in RUN_FIELD_NAMES:
            check.by_kind(_RUN_KINDS[key], value, key)
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
    return key if key in RUN_FIELD_NAMES or key.startswith("_") else repr(key)


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
        for spec in REQUEST_FIELDS:
            # why: null is an absent field (Megatron-LM writes "top_n_logprobs": null).
            if value.get(spec.name) is not None:
                self.by_kind(spec.kind, value[spec.name], f"{where}.{spec.name}")

    def by_kind(self, kind: Kind, value: Any, where: str) -> None:
        if kind is Kind.TEXT:
            self.kind(value, str, "a string", where)
        elif kind is Kind.TOKENS:
            self.kind(value, list, "a list of token ids", where)
            for i, token in enumerate(value):
                self.kind(token, int, "an int token id", f"{where}[{i}]")
        elif kind is Kind.FLOATS:
            self.numbers(value, where)
        elif kind is Kind.TOP_N:
            self.top_n(value, where)
        elif kind is Kind.NUMBERS:
            self.number_or_numbers(value, where)
        elif kind is Kind.COUNTS:
            self.kind(value, Mapping, kind.value, where)
            for name, count in value.items():
                self.kind(count, int, "an int >= 0", f"{where}[{name!r}]")
                if count < 0:
                    self.fail(f"{where}[{name!r}]", "an int >= 0", count)
        else:  # SECONDS, COUNT
            self.number(value, where)
            if value < 0 or (kind is Kind.COUNT and not isinstance(value, int)):
                self.fail(where, kind.value, value)

    def top_n(self, value: Any, where: str) -> None:
        self.kind(value, list, "a list (one per generated token) of {token: logprob}", where)
        for i, entry in enumerate(value):
            self.kind(entry, Mapping, "an object of token -> logprob", f"{where}[{i}]")
            for token, logprob in entry.items():
                self.number(logprob, f"{where}[{i}][{token!r}]")
