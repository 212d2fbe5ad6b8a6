"""The output record: what an engine run writes and a golden file holds. One definition.

An output JSON maps request ids ("0", "1", ...) to a per-request entry, beside run-level
fields and, in a golden, ``_provenance``. The names are Megatron-LM's (its dynamic-inference
functional tests write and compare this shape), so a Megatron golden and ours read alike::

    {"0": {"input_prompt": ..., "generated_tokens": [...], "logprobs": [...], ...},
     "throughput": [tok/s per run], "_provenance": {...}}

Everything that reads or writes this shape (the engine, the wire protocol, the ZMQ driver,
golden I/O, compare and diff) takes its field names and kinds from here. Plain Python: no torch.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

RequestJSON = dict[str, Any]
OutputJSON = dict[str, Any]
TopN = list[dict[str, float]]  # per position: token id (as a string, JSON keys) -> logprob


class Kind(enum.Enum):
    """The JSON type of a field's value."""

    TEXT = "a string"
    TOKENS = "a list of int token ids"
    FLOATS = "a list of numbers"
    TOP_N = "a list of {token id: logprob} objects"
    SECONDS = "a number of seconds >= 0"
    COUNT = "an int >= 0"
    NUMBERS = "a number or a non-empty list of numbers"
    COUNTS = "an object of {name: int >= 0}"


class RecordError(ValueError):
    """A record whose field has the wrong type; ``field`` and ``value`` say which."""

    def __init__(self, field: str, value: Any, expected: str) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        super().__init__(f"{field}: expected {expected}, got {shown}")
        self.field, self.value, self.expected = field, value, expected


@dataclass(frozen=True)
class FieldSpec:
    """One output field: its JSON name, kind, and how it is treated.

    ``always``: every finished record from an engine has it (the wire requires it).
    ``timing``: it changes from run to run on the same machine, so no diff or exact
    comparison looks at it.
    """

    name: str
    kind: Kind
    doc: str
    always: bool = False
    timing: bool = False


def _meta(kind: Kind, doc: str, *, always: bool = False, timing: bool = False) -> dict[str, Any]:
    return {"spec": (kind, doc, always, timing)}


@dataclass(frozen=True)
class RequestRecord:
    """One request's entry in the output JSON (``None``: the field is absent)."""

    request_id: str
    input_prompt: str | None = field(
        default=None, metadata=_meta(Kind.TEXT, "the prompt as text", always=True)
    )
    generated_text: str | None = field(
        default=None, metadata=_meta(Kind.TEXT, "the decoded generated tokens", always=True)
    )
    generated_tokens: list[int] | None = field(
        default=None, metadata=_meta(Kind.TOKENS, "sampled token ids", always=True)
    )
    logprobs: list[float] | None = field(
        default=None,
        metadata=_meta(
            Kind.FLOATS, "prompt logprobs (positions 1..n-1) then the generated tokens'"
        ),
    )
    prompt_logprobs: list[float] | None = field(
        default=None, metadata=_meta(Kind.FLOATS, "the prompt part of logprobs")
    )
    generated_logprobs: list[float] | None = field(
        default=None, metadata=_meta(Kind.FLOATS, "the generated part of logprobs")
    )
    top_n_logprobs: TopN | None = field(
        default=None, metadata=_meta(Kind.TOP_N, "the n most likely tokens per generated step")
    )
    prompt_top_n_logprobs: TopN | None = field(
        default=None, metadata=_meta(Kind.TOP_N, "the n most likely per prompt position")
    )
    latency: float | None = field(
        default=None, metadata=_meta(Kind.SECONDS, "arrival to finish", always=True, timing=True)
    )
    ttft: float | None = field(
        default=None, metadata=_meta(Kind.SECONDS, "arrival to first token", timing=True)
    )
    step_count: int | None = field(
        default=None,
        metadata=_meta(Kind.COUNT, "engine steps run so far when it is written", timing=True),
    )
    prefill_token_count: int | None = field(
        default=None,
        metadata=_meta(
            Kind.COUNT,
            "tokens this request prefilled (a preemption's recompute again), not read from the "
            "prefix cache; it depends on what shared the engine",
            timing=True,
        ),
    )
    cuda_graph_request_count_map: dict[str, int] | None = field(
        default=None,
        metadata=_meta(
            Kind.COUNTS,
            "Megatron: CUDA-graph batch sizes used (a GPU execution detail, never compared)",
            timing=True,
        ),
    )
    finish_reason: str | None = field(
        default=None, metadata=_meta(Kind.TEXT, "length, termination_id, stop_string, aborted")
    )
    error: str | None = field(
        default=None, metadata=_meta(Kind.TEXT, "why the request failed (then little else is set)")
    )

    def to_json(self) -> RequestJSON:
        """The JSON entry: every field that is set, in the order defined above."""
        return {
            spec.name: _copy(getattr(self, spec.name))
            for spec in REQUEST_FIELDS
            if getattr(self, spec.name) is not None
        }

    @classmethod
    def from_json(cls, request_id: str, data: Mapping[str, Any]) -> RequestRecord:
        """Type-check ``data`` (unknown keys are refused); raises RecordError naming the field.

        A null value is an absent field: Megatron-LM writes ``"top_n_logprobs": null`` when a
        request has none.
        """
        if not isinstance(data, Mapping):
            raise RecordError(repr(request_id), data, "an object of output fields")
        for key in data:
            if key not in REQUEST_FIELD_NAMES:
                raise RecordError(f"{request_id!r}.{key}", data[key], "a known output field")
        values = {
            spec.name: check_value(spec.kind, data[spec.name], f"{request_id!r}.{spec.name}")
            for spec in REQUEST_FIELDS
            if data.get(spec.name) is not None
        }
        return cls(request_id=request_id, **values)


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [dict(v) if isinstance(v, dict) else v for v in value]
    return value


REQUEST_FIELDS: tuple[FieldSpec, ...] = tuple(
    FieldSpec(f.name, *f.metadata["spec"]) for f in fields(RequestRecord) if "spec" in f.metadata
)
REQUEST_FIELD_NAMES: frozenset[str] = frozenset(spec.name for spec in REQUEST_FIELDS)
RUN_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("throughput", Kind.NUMBERS, "generated tokens / wall time, one per run", timing=True),
    FieldSpec("mem-max-allocated-bytes", Kind.NUMBERS, "peak memory the engine allocated"),
    FieldSpec("lifetime_prefill_token_count", Kind.COUNT, "prompt tokens actually prefilled"),
    # Megatron-LM's async scheduler (--inference-dynamic-batching-async-sched-mode): how many
    # steps it overlapped and compacted. Counts of a GPU scheduling detail, never compared.
    FieldSpec(
        "async_sched_step_count", Kind.COUNT, "steps run by the async scheduler", timing=True
    ),
    FieldSpec(
        "async_sched_compaction_step_count",
        Kind.COUNT,
        "async-scheduler steps that compacted the batch",
        timing=True,
    ),
)
RUN_FIELD_NAMES: frozenset[str] = frozenset(spec.name for spec in RUN_FIELDS)
PROVENANCE = "_provenance"


def check_value(kind: Kind, value: Any, where: str) -> Any:
    """``value`` if it is of ``kind`` (NaN and inf pass: a run reports what it computed)."""
    checks: dict[Kind, Callable[[Any], bool]] = {
        Kind.TEXT: lambda v: isinstance(v, str),
        Kind.TOKENS: lambda v: isinstance(v, list) and all(_is_int(t) for t in v),
        Kind.FLOATS: lambda v: isinstance(v, list) and all(_is_number(x) for x in v),
        Kind.TOP_N: _is_top_n,
        Kind.SECONDS: lambda v: _is_number(v) and not v < 0,
        Kind.COUNT: lambda v: _is_int(v) and v >= 0,
        Kind.COUNTS: lambda v: (
            isinstance(v, dict)
            and all(isinstance(k, str) and _is_int(n) and n >= 0 for k, n in v.items())
        ),
        Kind.NUMBERS: lambda v: (
            _is_number(v) or (isinstance(v, list) and bool(v) and all(_is_number(x) for x in v))
        ),
    }
    ok = checks[kind]
    if not ok(value):
        raise RecordError(where, value, kind.value)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_top_n(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(entry, dict)
        and all(isinstance(k, str) and _is_number(v) for k, v in entry.items())
        for entry in value
    )


def output_json(records: Iterable[RequestRecord], **run_fields: Any) -> OutputJSON:
    """The output JSON of ``records`` (sorted by numeric id) plus run-level fields
    (``throughput=...``; ``mem_max_allocated_bytes`` for the hyphenated name)."""
    out: OutputJSON = {r.request_id: r.to_json() for r in sorted(records, key=_id_order)}
    for key, value in run_fields.items():
        name = key.replace("_", "-") if key == "mem_max_allocated_bytes" else key
        if name not in RUN_FIELD_NAMES:
            raise ValueError(f"output_json: {name!r} is not a run-level field")
        if value is not None:
            out[name] = check_value(_RUN_KINDS[name], value, name)
    return out


_RUN_KINDS = {spec.name: spec.kind for spec in RUN_FIELDS}


def _id_order(record: RequestRecord) -> tuple[int, str]:
    rid = record.request_id
    return (int(rid), rid) if rid.isdigit() else (1 << 62, rid)


def request_ids(doc: Mapping[str, Any]) -> list[str]:
    """The request ids of an output JSON in file order (not run-level fields, not ``_``-keys)."""
    return [k for k in doc if k not in RUN_FIELD_NAMES and not k.startswith("_")]


def write_output(path: Path, doc: OutputJSON) -> None:
    """Write an output JSON (creating its folder), as every engine path writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
