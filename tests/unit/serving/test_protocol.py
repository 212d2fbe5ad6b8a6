"""The wire protocol: round trips, and every kind of bad frame is a ProtocolError naming it."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.errors import ProtocolError
from logitsmatch.serving.limits import DEFAULT_LIMITS, Limits
from logitsmatch.serving.protocol import (
    PROTOCOL_VERSION,
    Abort,
    Ack,
    Bye,
    Connect,
    Control,
    Error,
    Forgotten,
    Heartbeat,
    Partial,
    Reply,
    Status,
    Submit,
    decode,
    encode,
)

RECORD = {
    "input_prompt": "hi",
    "generated_text": " there",
    "generated_tokens": [5, 6],
    "latency": 0.25,
    "finish_reason": "length",
    "logprobs": [-1.5, -0.25, -3.0],
}
MESSAGES = [
    Connect("client", "c1"),
    Connect("engine", "r0", 7),
    Ack("connect", "coordinator"),
    Submit("1", "hello", SamplingParams(num_tokens_to_generate=4, top_k=1)),
    Submit(
        "x",
        (1, 2, 3),
        SamplingParams(
            temperature=0.5,
            top_k=0,
            top_p=0.9,
            seed=-3,
            termination_id=2,
            stop_strings=("\n",),
            return_log_probs=True,
            top_n_logprobs=3,
        ),
        True,
    ),
    Reply("1", RECORD, "r0"),
    Partial("1", 2, (7, 8), "r1"),
    Forgotten((b"k" * 32, bytes(32))),
    Abort("9"),
    Error("bad_frame", "why", None),
    Error("rejected", "why", "4"),
    *[Control(k) for k in ("pause", "unpause", "stop", "shutdown")],
    Heartbeat(),
    Status(),
    Status((("r0", 3), ("r1", 0)), True),
    Bye(),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_as_plain_msgpack(msg):
    frame = encode(msg)
    assert decode(frame) == msg
    assert msgpack.unpackb(frame, raw=False)["kind"] == msg.KIND  # plain msgpack, no pickle


def _bad(body: dict, limits: Limits = DEFAULT_LIMITS) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode(msgpack.packb(body), limits)
    return info.value


SUBMIT = {"kind": "submit", "request_id": "r1", "prompt": "hi", "sampling": {}}


@pytest.mark.parametrize(
    ("body", "field", "value"),
    [
        ({**SUBMIT, "request_id": 5}, "request_id", 5),
        ({**SUBMIT, "request_id": ""}, "request_id", ""),
        ({**SUBMIT, "prompt": 3.5}, "prompt", 3.5),
        ({**SUBMIT, "prompt": [1, "a"]}, "prompt[1]", "a"),
        ({**SUBMIT, "prompt": [1, -2]}, "prompt[1]", -2),
        ({**SUBMIT, "prompt": []}, "prompt", []),
        ({**SUBMIT, "stream": 1}, "stream", 1),
        ({**SUBMIT, "extra": 1}, "extra", 1),
        ({**SUBMIT, "sampling": []}, "sampling", []),
        ({**SUBMIT, "sampling": {"top_k": True}}, "top_k", True),
        ({**SUBMIT, "sampling": {"num_tokens_to_generate": 0}}, "num_tokens_to_generate", 0),
        (
            {**SUBMIT, "sampling": {"num_tokens_to_generate": 10**6}},
            "num_tokens_to_generate",
            10**6,
        ),
        ({**SUBMIT, "sampling": {"temperature": "hot"}}, "temperature", "hot"),
        ({**SUBMIT, "sampling": {"top_p": 1.5}}, "top_p", 1.5),
        ({**SUBMIT, "sampling": {"stop_strings": [""]}}, "stop_strings[0]", ""),
        ({**SUBMIT, "sampling": {"colour": 1}}, "colour", 1),
        (
            {**SUBMIT, "sampling": {"top_k": 1, "top_p": 0.5}},
            "sampling",
            {"top_k": 1, "top_p": 0.5},
        ),
        ({"kind": "connect", "role": "admin", "name": "x", "version": 1}, "role", "admin"),
        ({"kind": "connect", "role": "client", "name": "x"}, "version", None),
        (
            {
                "kind": "reply",
                "request_id": "1",
                "replica": "r",
                "record": {**RECORD, "latency": -1},
            },
            "latency",
            -1,
        ),
        (
            {
                "kind": "reply",
                "request_id": "1",
                "replica": "r",
                "record": {**RECORD, "logprobs": ["a"]},
            },
            "logprobs[0]",
            "a",
        ),
        (
            {"kind": "partial", "request_id": "1", "replica": "r", "offset": -1, "tokens": []},
            "offset",
            -1,
        ),
        ({"kind": "status", "replicas": [["r0", -1]]}, "replicas[0]", ["r0", -1]),
        ({"kind": "forgotten", "keys": []}, "keys", []),
        ({"kind": "forgotten", "keys": [b"short"]}, "keys[0]", b"short"),
        ({"kind": "forgotten", "keys": [bytes(32), "x" * 32]}, "keys[1]", "x" * 32),
        ({"kind": "pause", "now": True}, "now", True),
        ({"kind": "launch"}, "kind", "launch"),
        ({"kind": 3}, "kind", 3),
    ],
)
def test_a_bad_field_is_named_with_its_value(body, field, value):
    error = _bad(body)
    assert error.field == field
    assert error.value == value
    assert repr(field) in str(error)


def test_error_keeps_the_request_id_so_the_reply_can_name_it():
    assert _bad({**SUBMIT, "prompt": None}).request_id == "r1"
    assert _bad({"kind": "nope", "request_id": "q"}).request_id == "q"


def test_sizes_are_limited():
    limits = Limits(
        max_frame_bytes=4096, max_prompt_bytes=1024, max_prompt_tokens=10, max_id_chars=8
    )
    assert _bad({**SUBMIT, "prompt": "x" * 1025}, limits).field == "prompt"
    assert _bad({**SUBMIT, "prompt": list(range(11))}, limits).field == "prompt"
    assert _bad({**SUBMIT, "request_id": "x" * 9}, limits).field == "request_id"
    with pytest.raises(ProtocolError, match="larger than the limit of 4096 bytes") as info:
        decode(msgpack.packb({**SUBMIT, "pad": "x" * 5000}), limits)
    assert info.value.field == "frame"


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc1",
        b"\x92\x01",
        b"\xa3abc",
        b"\x81\x01\x02",
        msgpack.packb(msgpack.ExtType(1, b"x")),
        "text",
    ],
)
def test_garbage_is_a_protocol_error_on_field_frame(frame):
    with pytest.raises(ProtocolError) as info:
        decode(frame)
    assert info.value.field == "frame"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_protocol_error(frame):
    with contextlib.suppress(ProtocolError):  # anything else fails the test
        decode(frame)


LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=10)
)
TREES = st.recursive(
    LEAF,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4)
    ),
    max_leaves=12,
)
KINDS = st.sampled_from(
    [
        "connect",
        "ack",
        "submit",
        "reply",
        "partial",
        "abort",
        "error",
        "pause",
        "status",
        "heartbeat",
        "bye",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    KINDS,
    st.dictionaries(
        st.sampled_from(
            [
                "request_id",
                "prompt",
                "sampling",
                "stream",
                "record",
                "replica",
                "role",
                "name",
                "version",
                "offset",
                "tokens",
                "code",
                "message",
                "of",
                "replicas",
                "paused",
            ]
        ),
        TREES,
        max_size=5,
    ),
)
def test_wrongly_typed_fields_never_raise_anything_but_protocol_error(kind, fields):
    with contextlib.suppress(ProtocolError):  # anything else fails the test
        decode(msgpack.packb({"kind": kind, **fields}))


@settings(max_examples=100, deadline=None)
@given(
    st.text(min_size=1, max_size=50) | st.lists(st.integers(0, 2**31 - 1), min_size=1),
    st.integers(1, 1000),
    st.booleans(),
    st.text(min_size=1, max_size=20),
)
def test_submit_round_trips(prompt, n, logprobs, rid):
    prompt = prompt if isinstance(prompt, str) else tuple(prompt)
    msg = Submit(rid, prompt, SamplingParams(num_tokens_to_generate=n, return_log_probs=logprobs))
    assert decode(encode(msg)) == msg


def test_version_is_carried_by_connect():
    assert decode(encode(Connect("engine", "r0"))).version == PROTOCOL_VERSION


def test_an_unknown_field_named_at_length_is_quoted_short():
    frame = msgpack.packb({"kind": "heartbeat", "K" * 2_000_000: 1})
    with pytest.raises(ProtocolError) as error:
        decode(frame)
    assert len(str(error.value)) < 300, str(error.value)[:400]
    assert "2000002 chars" in str(error.value)
