"""Hypothesis throws malformed frames at a live worker (the test plays the coordinator): each
gets exactly one error reply, and the well-formed request in flight still completes."""

from __future__ import annotations

import itertools
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
    Ack,
    Connect,
    Error,
    Heartbeat,
    Reply,
    Submit,
    decode,
    encode,
)

BAD = st.one_of(
    garbage,
    frame_counts,
    wrong_types,
    unknown_kinds,
    oversized,
    # well-formed, but not for an engine (a connect with a foreign version among them)
    st.sampled_from(
        [
            [encode(Connect("engine", "x", version=99))],
            [
                encode(
                    Reply(
                        "1",
                        {
                            "input_prompt": "a",
                            "generated_text": "",
                            "generated_tokens": [],
                            "latency": 0.0,
                            "finish_reason": "length",
                        },
                        "r",
                    )
                )
            ],
            [packed({"kind": "status"})],
            [
                packed(
                    {
                        "kind": "partial",
                        "request_id": "1",
                        "offset": 0,
                        "tokens": [],
                        "replica": "r",
                    }
                )
            ],
        ]
    ),
)


class FakeCoordinator:
    """The test's ROUTER: what the worker believes is its coordinator."""

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:*")
        self.address = self.sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.engine: bytes | None = None

    def recv(self, timeout_s: float):
        """The next message that is not a heartbeat, or None at the deadline."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0 and self.sock.poll(int(left * 1000) + 1):
            identity, frame = self.sock.recv_multipart()
            self.engine = identity
            msg = decode(frame)
            if not isinstance(msg, Heartbeat):
                return msg
        return None

    def send(self, *frames: bytes) -> None:
        assert self.engine is not None
        self.sock.send_multipart([self.engine, *frames])

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


@pytest.fixture
def fake(threads):
    coordinator = FakeCoordinator()
    result = threads.worker(
        coordinator.address,
        "r0",
        NullEngine(step_delay_s=0.002),
        limits=LIMITS,
        coordinator_timeout_s=60.0,
    )
    connect = coordinator.recv(10)
    assert connect == Connect("engine", "r0")
    coordinator.send(encode(Ack("connect", "fake")))
    yield coordinator, result
    coordinator.close()


IDS = itertools.count()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bad=st.lists(BAD, min_size=1, max_size=4), dup=st.booleans())
def test_malformed_frames_get_one_error_each_and_good_requests_complete(fake, bad, dup):
    coordinator, result = fake
    good = f"good-{next(IDS)}"
    # why 50 tokens (100 ms of 2 ms steps) and the duplicate first: the duplicate must reach the
    # worker while `good` is still in flight; a 4-token request once finished before it (CI).
    coordinator.send(encode(Submit(good, "hello", SamplingParams(num_tokens_to_generate=50))))
    if dup:
        bad = [[encode(Submit(good, "again", SamplingParams()))], *bad]
    for frames in bad:
        coordinator.send(*frames)
    errors, replies = [], []
    deadline = time.monotonic() + 10
    while (len(errors) < len(bad) or not replies) and time.monotonic() < deadline:
        msg = coordinator.recv(0.5)
        if isinstance(msg, Error):
            errors.append(msg)
        elif msg is not None:
            replies.append(msg)
    assert coordinator.recv(0.05) is None  # exactly one answer per frame
    assert len(errors) == len(bad), errors
    assert {e.code for e in errors} <= {"bad_frame", "unexpected_kind", "rejected"}
    assert any(e.code == "rejected" and e.request_id == good for e in errors) == dup
    assert [(r.request_id, r.record["input_prompt"]) for r in replies] == [(good, "hello")]
    assert not result, f"the worker ended: {result}"
