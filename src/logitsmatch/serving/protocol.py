"""The serving wire protocol: versioned, msgpack-encoded, one frame per message, never pickle.

A message is a msgpack map with a ``kind`` key. Peers say which ``PROTOCOL_VERSION`` they
speak in ``connect``; the coordinator refuses any other. ``decode`` validates every field
(type, range, size) and raises ProtocolError naming the field and value; nothing a peer sends
can reach the engine unchecked.

Directions: clients send connect, submit, abort, pause, unpause, stop, shutdown, status,
heartbeat, bye; engines send connect, reply, partial, error, forgotten, heartbeat, bye; the
coordinator
sends ack, submit/abort/control to engines, reply/partial/error/status to clients, heartbeat,
and bye to clients when it shuts down.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving import roles
from logitsmatch.serving.errors import ProtocolError
from logitsmatch.serving.fields import Body
from logitsmatch.serving.limits import DEFAULT_LIMITS, Limits
from logitsmatch.serving.wire_record import record_from_wire
from logitsmatch.serving.wire_sampling import sampling_from_wire, sampling_to_wire

PROTOCOL_VERSION = 1
ROLES = ("client", "engine", "operator")  # engine and operator show a secret (roles.py)
CONTROL_KINDS = ("pause", "unpause", "stop", "shutdown")
MAX_FORGOTTEN_KEYS = 4096  # per frame: 4096 x 32-byte keys is 131 KB
KEY_BYTES = 32  # a prefix-cache block key: a sha256 digest (engine/prefix_cache.py)


@dataclass(frozen=True)
class Connect:
    """``secret``: what proves the engine or operator role (``roles.ServiceSecrets``)."""

    KIND: ClassVar[str] = "connect"
    role: str
    name: str
    version: int = PROTOCOL_VERSION
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Ack:
    """Acknowledges a connect or a control message (``of`` names which)."""

    KIND: ClassVar[str] = "ack"
    of: str
    detail: str = ""
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Submit:
    KIND: ClassVar[str] = "submit"
    request_id: str
    prompt: str | tuple[int, ...]
    sampling: SamplingParams
    stream: bool = False


@dataclass(frozen=True)
class Reply:
    """A finished request: ``record`` is ``RequestRecord.to_json()``'s map."""

    KIND: ClassVar[str] = "reply"
    request_id: str
    record: dict[str, Any]
    replica: str


@dataclass(frozen=True)
class Partial:
    """Tokens generated so far: ``tokens`` continue the stream at index ``offset``."""

    KIND: ClassVar[str] = "partial"
    request_id: str
    offset: int
    tokens: tuple[int, ...]
    replica: str


@dataclass(frozen=True)
class Forgotten:
    """From an engine: prefix-cache block keys its replica no longer holds."""

    KIND: ClassVar[str] = "forgotten"
    keys: tuple[bytes, ...]


@dataclass(frozen=True)
class Abort:
    KIND: ClassVar[str] = "abort"
    request_id: str


@dataclass(frozen=True)
class Error:
    """An error reply; ``request_id`` is None when it concerns no (readable) request."""

    KIND: ClassVar[str] = "error"
    code: str
    message: str
    request_id: str | None = None


@dataclass(frozen=True)
class Control:
    """pause / unpause / stop / shutdown: the kind is the message's ``kind``."""

    kind: str

    @property
    def KIND(self) -> str:  # why: the same accessor as the other message classes' ClassVar
        return self.kind


@dataclass(frozen=True)
class Heartbeat:
    KIND: ClassVar[str] = "heartbeat"


@dataclass(frozen=True)
class Status:
    """From a client: a query (``replicas`` None). From the coordinator: the answer."""

    KIND: ClassVar[str] = "status"
    replicas: tuple[tuple[str, int], ...] | None = None
    paused: bool = False


@dataclass(frozen=True)
class Bye:
    """The sender is leaving; the receiver forgets it now instead of at its deadline."""

    KIND: ClassVar[str] = "bye"


Message = (
    Connect
    | Ack
    | Submit
    | Reply
    | Partial
    | Forgotten
    | Abort
    | Error
    | Control
    | Heartbeat
    | Status
    | Bye
)


def encode(msg: Message) -> bytes:
    """One frame for ``msg``."""
    body: dict[str, Any] = {"kind": msg.KIND}
    if isinstance(msg, Submit):
        prompt = msg.prompt if isinstance(msg.prompt, str) else list(msg.prompt)
        body.update(
            request_id=msg.request_id,
            prompt=prompt,
            sampling=sampling_to_wire(msg.sampling),
            stream=msg.stream,
        )
    elif isinstance(msg, Partial):
        body.update(
            request_id=msg.request_id,
            offset=msg.offset,
            tokens=list(msg.tokens),
            replica=msg.replica,
        )
    elif isinstance(msg, Forgotten):
        body.update(keys=list(msg.keys))
    elif isinstance(msg, Status):
        if msg.replicas is not None:
            body.update(replicas=[list(r) for r in msg.replicas], paused=msg.paused)
    elif not isinstance(msg, Control):
        body.update({k: v for k, v in msg.__dict__.items() if v is not None})
    return msgpack.packb(body, use_bin_type=True)


def decode(frame: bytes, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Parse and validate one frame; raises ProtocolError naming the bad field and value."""
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise ProtocolError("frame", frame, f"expected bytes, got {type(frame).__name__}")
    if len(frame) > limits.max_frame_bytes:
        raise ProtocolError(
            "frame",
            f"<{len(frame)} bytes>",
            f"larger than the limit of {limits.max_frame_bytes} bytes",
        )
    try:
        data = msgpack.unpackb(frame, raw=False, use_list=True, strict_map_key=True)
    except Exception as e:  # why: msgpack raises many types on garbage; all mean "not msgpack"
        raise ProtocolError(
            "frame", bytes(frame[:32]), f"not a msgpack message ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(data, dict):
        raise ProtocolError("frame", data, f"expected a msgpack map, got {type(data).__name__}")
    kind = data.pop("kind", None)
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        expected = f"unknown message kind; expected one of {sorted(_PARSERS)}"
        raise ProtocolError("kind", kind, expected, Body("?", data).request_id)
    body = Body(kind, data)
    return parser(body, limits)


def _connect(b: Body, lim: Limits) -> Connect:
    b.only({"role", "name", "version", "secret"})
    role = b.string("role", 16)
    if role not in ROLES:
        raise b.fail("role", role, f"expected one of {list(ROLES)}")
    return Connect(
        role,
        b.string("name", lim.max_name_chars, nonempty=True),
        b.integer("version", 0, 1 << 31),
        b.string("secret", roles.MAX_CHARS, default=None),
    )


def _ack(b: Body, lim: Limits) -> Ack:
    b.only({"of", "detail", "version"})
    return Ack(
        b.string("of", 16),
        b.string("detail", lim.max_text_chars, default=""),
        b.integer("version", 0, 1 << 31, default=PROTOCOL_VERSION),
    )


def _submit(b: Body, lim: Limits) -> Submit:
    b.only({"request_id", "prompt", "sampling", "stream"})
    rid = b.string("request_id", lim.max_id_chars, nonempty=True)
    prompt = b.get("prompt")
    if isinstance(prompt, str):
        if len(prompt.encode("utf-8", "surrogatepass")) > lim.max_prompt_bytes:
            raise b.fail("prompt", prompt, f"larger than {lim.max_prompt_bytes} bytes")
        if not prompt:
            raise b.fail("prompt", prompt, "empty prompt")
    elif isinstance(prompt, list):
        prompt = b.int_list("prompt", lim.max_prompt_tokens, 0, (1 << 31) - 1)
        if not prompt:
            raise b.fail("prompt", [], "empty prompt")
    else:
        raise b.fail("prompt", prompt, "expected a string or a list of token ids")
    sampling = sampling_from_wire(b, b.get("sampling"), lim)
    return Submit(rid, prompt, sampling, b.boolean("stream", default=False))


def _reply(b: Body, lim: Limits) -> Reply:
    b.only({"request_id", "record", "replica"})
    return Reply(
        b.string("request_id", lim.max_id_chars, nonempty=True),
        record_from_wire(b, b.get("record"), lim),
        b.string("replica", lim.max_name_chars, nonempty=True),
    )


def _partial(b: Body, lim: Limits) -> Partial:
    b.only({"request_id", "offset", "tokens", "replica"})
    return Partial(
        b.string("request_id", lim.max_id_chars, nonempty=True),
        b.integer("offset", 0, lim.max_tokens_to_generate),
        b.int_list("tokens", lim.max_tokens_to_generate, 0, (1 << 31) - 1),
        b.string("replica", lim.max_name_chars, nonempty=True),
    )


def _forgotten(b: Body, lim: Limits) -> Forgotten:
    b.only({"keys"})
    keys = b.get("keys")
    if not isinstance(keys, list) or not 0 < len(keys) <= MAX_FORGOTTEN_KEYS:
        raise b.fail("keys", keys, f"expected a list of 1 to {MAX_FORGOTTEN_KEYS} block keys")
    for i, key in enumerate(keys):
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise b.fail(f"keys[{i}]", key, f"expected {KEY_BYTES} bytes (a block key)")
    return Forgotten(tuple(keys))


def _abort(b: Body, lim: Limits) -> Abort:
    b.only({"request_id"})
    return Abort(b.string("request_id", lim.max_id_chars, nonempty=True))


def _error(b: Body, lim: Limits) -> Error:
    b.only({"code", "message", "request_id"})
    return Error(
        b.string("code", 32, nonempty=True),
        b.string("message", lim.max_text_chars),
        b.string("request_id", lim.max_id_chars, default=None),
    )


def _control(b: Body, lim: Limits) -> Control:
    b.only(set())
    return Control(b.kind)


def _heartbeat(b: Body, lim: Limits) -> Heartbeat:
    b.only(set())
    return Heartbeat()


def _status(b: Body, lim: Limits) -> Status:
    b.only({"replicas", "paused"})
    raw = b.get("replicas", None)
    if raw is None:
        return Status()
    if not isinstance(raw, list) or len(raw) > 4096:
        raise b.fail("replicas", raw, "expected a list of [name, outstanding] pairs")
    replicas = []
    for i, item in enumerate(raw):
        ok = (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], int)
            and not isinstance(item[1], bool)
            and item[1] >= 0
        )
        if not ok:
            raise b.fail(f"replicas[{i}]", item, "expected a [name, outstanding] pair")
        replicas.append((item[0], item[1]))
    return Status(tuple(replicas), b.boolean("paused", default=False))


def _bye(b: Body, lim: Limits) -> Bye:
    b.only(set())
    return Bye()


_PARSERS: dict[str, Callable[[Body, Limits], Message]] = {
    "connect": _connect,
    "ack": _ack,
    "submit": _submit,
    "reply": _reply,
    "partial": _partial,
    "forgotten": _forgotten,
    "abort": _abort,
    "error": _error,
    "heartbeat": _heartbeat,
    "status": _status,
    "bye": _bye,
    **{k: _control for k in CONTROL_KINDS},
}
KINDS = frozenset(_PARSERS)
