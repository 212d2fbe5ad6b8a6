"""Hypothesis throws malformed frames at a live coordinator: each gets exactly one error reply,
the coordinator keeps running, and the well-formed request in flight still completes."""

from __future__ import annotations

import itertools
import logging
import time

import pytest
import zmq
from fuzz_strategies import (
    LIMITS,
    frame_counts,
    garbage,
    oversized,
    packed,
    unknown_kinds,
    wrong_types,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.null_engine import NullEngine
from logitsmatch.serving.protocol import (
    Connect,
    Error,
    Message,
    Reply,
    Status,
    Submit,
    decode,
    encode,
)

GOOD_PROMPT = "a well-formed prompt"


class Peer:
    """A raw DEALER that sends exactly the frames it is given."""

    def __init__(self, ctx: zmq.Context, address: str) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(address)

    def send(self, *frames: bytes) -> None:
        self.sock.send_multipart(list(frames))

    def recv(self, timeout_s: float) -> Message | None:
        if not self.sock.poll(int(timeout_s * 1000)):
            return None
        (frame,) = self.sock.recv_multipart()
        return decode(frame)

    def close(self) -> None:
        self.sock.close()


wrong_version = (
    st.integers(0, 2**31)
    .filter(lambda v: v != 1)
    .map(lambda v: [packed({"kind": "connect", "role": "client", "name": "f", "version": v})])
)
not_for_clients = st.sampled_from(
    [
        [packed({"kind": "ack", "of": "connect"})],
        [packed({"kind": "error", "code": "x", "message": "y"})],
        [
            packed(
                {"kind": "partial", "request_id": "1", "offset": 0, "tokens": [1], "replica": "r"}
            )
        ],
    ]
)
BAD = st.one_of(
    garbage, frame_counts, wrong_types, unknown_kinds, oversized, wrong_version, not_for_clients
)


@pytest.fixture
def stack(threads):
    coordinator = threads.coordinator(limits=LIMITS, heartbeat_s=0.1, engine_timeout_s=5.0)
    threads.worker(coordinator.address, "r0", NullEngine(step_delay_s=0.002), limits=LIMITS)
    ctx = zmq.Context()
    probe = Peer(ctx, coordinator.address)
    probe.send(encode(Connect("client", "probe")))
    assert probe.recv(5).of == "connect"
    deadline = time.monotonic() + 10
    while True:
        probe.send(encode(Status()))
        if probe.recv(5).replicas or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    yield coordinator, ctx, probe
    probe.close()
    ctx.term()


def collect(peer: Peer, good_id: str | None, errors_expected: int) -> tuple[list[Error], list]:
    errors: list[Error] = []
    replies: list[Reply] = []
    deadline = time.monotonic() + 10
    while (
        len(errors) < errors_expected or (good_id and not replies)
    ) and time.monotonic() < deadline:
        msg = peer.recv(0.5)
        if isinstance(msg, Error):
            errors.append(msg)
        elif isinstance(msg, Reply):
            replies.append(msg)
    extra = peer.recv(0.05)  # nothing more may arrive: exactly one error per bad frame
    assert extra is None, extra
    return errors, replies


IDS = itertools.count()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bad=st.lists(BAD, min_size=1, max_size=4), dup=st.booleans())
def test_malformed_frames_get_one_error_each_and_good_requests_complete(stack, bad, dup):
    coordinator, ctx, _ = stack
    good_id = f"good-{next(IDS)}"
    client, stranger = Peer(ctx, coordinator.address), Peer(ctx, coordinator.address)
    try:
        client.send(encode(Connect("client", "fuzzer")))
        assert client.recv(5).of == "connect"
        # why 50 tokens (100 ms of 2 ms steps) and the duplicate first: it must arrive while the
        # first is in flight; a 4-token request can finish before it on a loaded machine.
        params = SamplingParams(num_tokens_to_generate=50)
        client.send(encode(Submit(good_id, GOOD_PROMPT, params)))
        if dup:  # the same id again while the first is in flight
            bad = [[encode(Submit(good_id, "again", SamplingParams()))], *bad]
        for frames in bad:
            client.send(*frames)
            stranger.send(*frames)
        errors, replies = collect(client, good_id, len(bad))
        assert len(errors) == len(bad)
        assert all(
            e.code in {"bad_frame", "version", "unexpected_kind", "duplicate_id"} for e in errors
        ), errors
        assert ("duplicate_id" in {e.code for e in errors}) == dup
        assert [r.request_id for r in replies] == [good_id]
        assert replies[0].record["input_prompt"] == GOOD_PROMPT
        stranger_errors, _ = collect(stranger, None, len(bad))
        assert len(stranger_errors) == len(bad)
    finally:
        client.close()
        stranger.close()


def test_after_the_storm_the_coordinator_still_serves(stack):
    _, _, probe = stack
    probe.send(b"\xff", b"two frames")
    assert probe.recv(5).code == "bad_frame"
    probe.send(encode(Submit("after", GOOD_PROMPT, SamplingParams(num_tokens_to_generate=2))))
    reply = probe.recv(5)
    assert isinstance(reply, Reply) and reply.request_id == "after"
    probe.send(encode(Status()))
    assert probe.recv(5).replicas == (("r0", 0),)


def test_a_bad_frame_is_logged_naming_the_problem(stack, caplog):
    _, _, probe = stack
    with caplog.at_level(logging.WARNING, logger="logitsmatch.serving.coordinator"):
        probe.send(packed({"kind": "submit", "request_id": "z", "prompt": 4.5, "sampling": {}}))
        error = probe.recv(5)
    assert error.code == "bad_frame" and error.request_id == "z"
    assert "field 'prompt' = 4.5" in error.message
    assert any("bad frame" in r.message and "prompt" in r.message for r in caplog.records)
