"""The entry rank's connection to the coordinator: register, turn messages into events, reply.

Only the entry rank of a replica owns a socket. Everything it receives is validated; a bad
frame gets an error reply and is otherwise ignored. If the coordinator stays silent past its
deadline (it pings every heartbeat), ``collect`` yields a ``["lost", why]`` event so that every
rank of the replica exits together.
"""

from __future__ import annotations

import logging
import time

import zmq

from logitsmatch.record import RequestRecord
from logitsmatch.serving.errors import CoordinatorLost, ProtocolError
from logitsmatch.serving.limits import Limits
from logitsmatch.serving.protocol import (
    MAX_FORGOTTEN_KEYS,
    PROTOCOL_VERSION,
    Abort,
    Ack,
    Bye,
    Connect,
    Control,
    Error,
    Forgotten,
    Heartbeat,
    Message,
    Partial,
    Reply,
    Submit,
    decode,
    encode,
)
from logitsmatch.serving.security import CurveClientKeys, secure_client
from logitsmatch.serving.wire_sampling import sampling_to_wire
from logitsmatch.serving.worker_state import Event, Outcome

log = logging.getLogger(__name__)
MAX_BATCH = 1024  # messages turned into events per iteration; the rest wait for the next one
# why a byte budget too: applying an event tokenizes its prompt (about 0.5 s per MB here), and
# nothing is sent while events are applied; 32 prompts of 1 MB in one iteration kept the
# replica silent past its heartbeat deadline. So an iteration takes prompts up to this much
# (always at least one) and the heartbeat goes out between iterations.
PROMPT_BYTES_PER_ITERATION = 1 << 20


class CoordinatorLink:
    def __init__(
        self,
        address: str,
        replica: str,
        *,
        heartbeat_s: float,
        timeout_s: float,
        limits: Limits,
        curve: CurveClientKeys | None = None,
        secret: str | None = None,
    ) -> None:
        if not 0 < heartbeat_s < timeout_s:
            raise ValueError(
                f"need 0 < heartbeat_s ({heartbeat_s}) < coordinator_timeout_s ({timeout_s})"
            )
        self.address, self.replica, self.secret = address, replica, secret
        self.heartbeat_s, self.timeout_s, self.limits = heartbeat_s, timeout_s, limits
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.SNDHWM, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.MAXMSGSIZE, 2 * limits.max_frame_bytes)
        # why: with no live connection a send would wait forever; give up at the deadline
        self.sock.setsockopt(zmq.SNDTIMEO, int(timeout_s * 1000))
        self.broken: str | None = None
        secure_client(self.sock, curve)
        self.sock.connect(address)
        self.last_heard = self.last_sent = time.monotonic()

    def register(self) -> None:
        """Say who we are; raises CoordinatorLost without an answer within the deadline."""
        self._send(Connect("engine", self.replica, secret=self.secret))
        if self.broken:
            raise CoordinatorLost(self.broken)
        deadline = time.monotonic() + self.timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if not self.sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                break
            msg = self._recv()
            if isinstance(msg, Ack) and msg.of == "connect":
                if msg.version != PROTOCOL_VERSION:
                    raise RuntimeError(
                        f"replica {self.replica!r}: the coordinator at "
                        f"{self.address} speaks protocol version {msg.version}, "
                        f"this worker {PROTOCOL_VERSION}"
                    )
                self.last_heard = time.monotonic()
                return
            if isinstance(msg, Error):
                raise RuntimeError(
                    f"replica {self.replica!r}: the coordinator at {self.address} "
                    f"refused to register it ({msg.code}): {msg.message}"
                )
        raise CoordinatorLost(
            f"replica {self.replica!r}: no answer from the coordinator at "
            f"{self.address} within {self.timeout_s} s"
        )

    def collect(self, timeout_s: float) -> list[Event]:
        """Wait up to ``timeout_s`` for messages; return them as events (heartbeats handled)."""
        events: list[Event] = []
        budget = PROMPT_BYTES_PER_ITERATION
        if self.sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            for _ in range(MAX_BATCH):
                if budget <= 0 or not self.sock.poll(0, zmq.POLLIN):
                    break
                msg = self._recv()
                if msg is not None:
                    self._to_event(msg, events)
                    if isinstance(msg, Submit):
                        budget -= len(msg.prompt) * (1 if isinstance(msg.prompt, str) else 4)
        now = time.monotonic()
        if now - self.last_sent >= self.heartbeat_s:
            self._send(Heartbeat())
        if self.broken:
            events.append(["lost", self.broken])
        elif now - self.last_heard > self.timeout_s:
            events.append(
                [
                    "lost",
                    f"replica {self.replica!r}: the coordinator at {self.address} "
                    f"sent nothing for {self.timeout_s} s; giving up",
                ]
            )
        return events

    def send_outcome(self, outcome: Outcome) -> None:
        for rid, code, message in outcome.errors:
            self._send(Error(code, message, rid))
        for record in outcome.records:
            self.send_record(record)

    def send_record(self, record: RequestRecord) -> None:
        self._send(Reply(record.request_id, record.to_json(), self.replica))

    def send_partial(self, request_id: str, offset: int, tokens: list[int]) -> None:
        self._send(Partial(request_id, offset, tuple(tokens), self.replica))

    def send_forgotten(self, keys: list[bytes]) -> None:
        """Report forgotten prefix-cache keys, in frames of at most MAX_FORGOTTEN_KEYS."""
        for start in range(0, len(keys), MAX_FORGOTTEN_KEYS):
            self._send(Forgotten(tuple(keys[start : start + MAX_FORGOTTEN_KEYS])))

    def close(self, bye: bool) -> None:
        if self.sock.closed:
            return
        if bye:
            self._send(Bye())
        self.sock.close(linger=500)  # why: let the last replies and the bye reach the coordinator
        self.ctx.term()

    def _send(self, msg: Message) -> None:
        """Send; if the socket cannot take it within the deadline, mark the link broken."""
        if self.broken:
            return
        try:
            self.sock.send(encode(msg))
        except zmq.Again:
            self.broken = (
                f"replica {self.replica!r}: could not send to the coordinator at "
                f"{self.address} within {self.timeout_s} s"
            )
        self.last_sent = time.monotonic()

    def _recv(self) -> Message | None:
        frames = self.sock.recv_multipart()
        try:
            if len(frames) != 1:
                raise ProtocolError("frames", len(frames), "expected exactly 1 frame")
            msg = decode(frames[0], self.limits)
        except ProtocolError as e:
            log.warning("replica %r: bad frame from the coordinator: %s", self.replica, e)
            self._send(Error("bad_frame", str(e)[: self.limits.max_text_chars], e.request_id))
            return None
        self.last_heard = time.monotonic()
        return msg

    def _to_event(self, msg: Message, events: list[Event]) -> None:
        if isinstance(msg, Submit):
            prompt = msg.prompt if isinstance(msg.prompt, str) else list(msg.prompt)
            events.append(
                ["add", msg.request_id, prompt, sampling_to_wire(msg.sampling), msg.stream]
            )
        elif isinstance(msg, Abort):
            events.append(["abort", msg.request_id])
        elif isinstance(msg, Control):
            events.append([msg.kind])
        elif isinstance(msg, Error):
            if msg.code == "not_connected":  # why: a restarted coordinator no longer knows us
                events.append(
                    [
                        "lost",
                        f"replica {self.replica!r}: the coordinator at "
                        f"{self.address} forgot it ({msg.message})",
                    ]
                )
            else:
                log.warning(
                    "replica %r: coordinator says %s: %s", self.replica, msg.code, msg.message
                )
        elif not isinstance(msg, (Heartbeat, Ack)):
            self._send(
                Error(
                    "unexpected_kind",
                    f"an engine does not accept {msg.KIND!r}",
                    getattr(msg, "request_id", None),
                )
            )
