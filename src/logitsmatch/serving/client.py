"""The asyncio client: submit requests to the coordinator and await their finished records.

``fut = await client.add_request(prompt, sampling)`` sends the request and returns an
asyncio future; ``await fut`` gives the finished record as a dict (RequestRecord.to_json()'s
keys plus ``request_id`` and ``replica``; ``latency`` is measured here, from send to reply,
and the engine's own is kept as ``engine_latency``). The future raises RequestFailed on an
error reply, RequestTimeout past its deadline, CoordinatorLost when the coordinator stops
answering heartbeats. Streaming: pass ``on_partial`` or iterate ``client.stream(...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.asyncio

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.errors import CoordinatorLost, ProtocolError, RequestFailed, RequestTimeout
from logitsmatch.serving.limits import DEFAULT_LIMITS, Limits
from logitsmatch.serving.protocol import (
    Abort,
    Ack,
    Bye,
    Connect,
    Control,
    Error,
    Heartbeat,
    Message,
    Partial,
    Reply,
    Status,
    Submit,
    decode,
    encode,
)
from logitsmatch.serving.security import CurveClientKeys, secure_client
from logitsmatch.serving.timeouts import CLIENT_TIMEOUT_S, HEARTBEAT_S

log = logging.getLogger(__name__)
PartialCallback = Callable[[Partial], None]


@dataclass(frozen=True)
class StreamEvent:
    """New tokens of a streamed request; the last event has ``record`` set (and no tokens)."""

    offset: int
    tokens: list[int]
    record: dict[str, Any] | None = None


@dataclass
class _Pending:
    future: asyncio.Future[dict[str, Any]]
    started: float
    on_partial: PartialCallback | None
    timer: asyncio.TimerHandle | None


class Client:
    def __init__(
        self,
        address: str,
        *,
        name: str = "client",
        curve: CurveClientKeys | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        coordinator_timeout_s: float = CLIENT_TIMEOUT_S,
        default_deadline_s: float | None = 600.0,
        limits: Limits = DEFAULT_LIMITS,
        operator_secret: str | None = None,
    ) -> None:
        """``operator_secret``: connect as the service's operator (``roles.py``), who may also
        pause, unpause, stop and shut it down; without it, a plain client."""
        if not 0 < heartbeat_s < coordinator_timeout_s:
            raise ValueError(
                f"Client: need 0 < heartbeat_s ({heartbeat_s}) < "
                f"coordinator_timeout_s ({coordinator_timeout_s})"
            )
        self.address, self.name, self.limits = address, name, limits
        self.heartbeat_s, self.timeout_s = heartbeat_s, coordinator_timeout_s
        self.default_deadline_s = default_deadline_s
        self._operator_secret = operator_secret
        self._ctx = zmq.asyncio.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.SNDHWM, 0)
        self._sock.setsockopt(zmq.RCVHWM, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, 2 * limits.max_frame_bytes)
        # why: with no live connection (e.g. a refused CURVE handshake) a send would wait forever
        self._sock.setsockopt(zmq.SNDTIMEO, int(coordinator_timeout_s * 1000))
        secure_client(self._sock, curve)
        self._sock.connect(address)
        self._pending: dict[str, _Pending] = {}
        self._waiters: dict[str, asyncio.Future[Any]] = {}
        self._control_lock: asyncio.Lock | None = None
        self._ids = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._lost: CoordinatorLost | None = None
        self._last_heard = time.monotonic()
        self._closed = False
        # why: lets a caller check "each request answered exactly once" (stray = unknown id)
        self.counters: Counter[str] = Counter()

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, timeout_s: float = CLIENT_TIMEOUT_S) -> None:
        """Register as a client; raises CoordinatorLost if no ack comes within ``timeout_s``."""
        if self._tasks or self._closed:
            raise RuntimeError(f"client {self.name!r}: connect() may be called once")
        self._control_lock = asyncio.Lock()
        self._last_heard = time.monotonic()
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._watch())]
        try:
            role = "client" if self._operator_secret is None else "operator"
            hello = Connect(role, self.name, secret=self._operator_secret)
            await self._roundtrip("connect", hello, timeout_s)
        except TimeoutError:
            raise CoordinatorLost(
                f"client {self.name!r}: no answer from the coordinator at "
                f"{self.address} within {timeout_s} s"
            ) from None

    async def add_request(
        self,
        prompt: str | Sequence[int],
        sampling: SamplingParams | None = None,
        request_id: str | None = None,
        deadline: float | None = None,
        on_partial: PartialCallback | None = None,
    ) -> asyncio.Future[dict[str, Any]]:
        """Send one request; returns the future of its finished record.

        ``deadline``: seconds from now before the future raises RequestTimeout (and the request
        is aborted); None uses the client's ``default_deadline_s``. ``on_partial`` is called
        with each Partial (streamed tokens) before the record arrives.
        """
        self._check_usable()
        rid = str(next(self._ids)) if request_id is None else request_id
        if not isinstance(rid, str) or not 0 < len(rid) <= self.limits.max_id_chars:
            raise ValueError(
                f"request_id must be a non-empty string of at most "
                f"{self.limits.max_id_chars} chars, got {rid!r}"
            )
        if rid in self._pending:
            raise ValueError(f"request {rid!r} is already in flight from this client")
        prompt = prompt if isinstance(prompt, str) else tuple(int(t) for t in prompt)
        frame = encode(Submit(rid, prompt, sampling or SamplingParams(), on_partial is not None))
        if len(frame) > self.limits.max_frame_bytes:
            raise ValueError(
                f"request {rid!r}: encoded size {len(frame)} bytes exceeds the limit "
                f"of {self.limits.max_frame_bytes}"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        limit = self.default_deadline_s if deadline is None else deadline
        timer = loop.call_later(limit, self._expire, rid, limit) if limit is not None else None
        self._pending[rid] = _Pending(future, time.perf_counter(), on_partial, timer)
        try:
            await self._send(frame)
        except CoordinatorLost:
            future.exception()  # why: the caller gets this error raised here, not via the future
            raise
        return future

    async def stream(
        self,
        prompt: str | Sequence[int],
        sampling: SamplingParams | None = None,
        request_id: str | None = None,
        deadline: float | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Yield tokens as the replica produces them, then a last event with the record."""
        queue: asyncio.Queue[Partial] = asyncio.Queue()
        future = await self.add_request(prompt, sampling, request_id, deadline, queue.put_nowait)
        while not future.done():
            getter = asyncio.ensure_future(queue.get())
            either: set[asyncio.Future[Any]] = {getter, future}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield StreamEvent(getter.result().offset, list(getter.result().tokens))
            else:
                getter.cancel()
        while not queue.empty():  # partials sent before the reply are already queued
            partial = queue.get_nowait()
            yield StreamEvent(partial.offset, list(partial.tokens))
        record = future.result()
        yield StreamEvent(len(record["generated_tokens"]), [], record)

    async def abort(self, request_id: str) -> None:
        """Ask for a request to stop; its future then gets the partial (aborted) record."""
        self._check_usable()
        await self._send(encode(Abort(request_id)))

    async def status(self, timeout_s: float = CLIENT_TIMEOUT_S) -> Status:
        return await self._roundtrip("status", Status(), timeout_s)

    async def wait_for_replicas(self, count: int, timeout_s: float = 60.0) -> Status:
        """Poll status until ``count`` replicas are registered; TimeoutError names the gap."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = await self.status(timeout_s)
            if len(status.replicas or ()) >= count:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {len(status.replicas or ())} of {count} replicas "
                    f"registered with {self.address} within {timeout_s} s"
                )
            await asyncio.sleep(0.05)

    async def pause(self, timeout_s: float = CLIENT_TIMEOUT_S) -> None:
        await self._roundtrip("pause", Control("pause"), timeout_s)

    async def unpause(self, timeout_s: float = CLIENT_TIMEOUT_S) -> None:
        await self._roundtrip("unpause", Control("unpause"), timeout_s)

    async def stop(self, timeout_s: float = CLIENT_TIMEOUT_S) -> None:
        """Stop the engines: in-flight requests come back aborted; new ones are refused."""
        await self._roundtrip("stop", Control("stop"), timeout_s)

    async def shutdown(self, timeout_s: float = CLIENT_TIMEOUT_S) -> None:
        """Stop the engines and the coordinator."""
        await self._roundtrip("shutdown", Control("shutdown"), timeout_s)

    async def close(self) -> None:
        """Say bye, fail what is still pending, and release the socket, tasks and context."""
        if self._closed:
            return
        self._closed = True
        if self._tasks and self._lost is None:
            # why: best effort; the coordinator also notices when its sends to us fail
            with contextlib.suppress(zmq.ZMQError, TimeoutError):
                await asyncio.wait_for(self._sock.send(encode(Bye())), 0.1)
        for task in [*self._tasks, *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        self._fail_all(lambda rid: RequestFailed(rid, "client_closed", "the client was closed"))
        self._sock.close(linger=100)
        self._ctx.term()

    @property
    def closed(self) -> bool:
        """True once close() released the socket and the context."""
        return self._sock.closed and self._ctx.closed

    # ---- internals -------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._lost is not None:
            raise self._lost
        if self._closed or not self._tasks:
            raise RuntimeError(
                f"client {self.name!r} is {'closed' if self._closed else 'not connected'}"
            )

    async def _roundtrip(self, key: str, msg: Message, timeout_s: float) -> Any:
        if self._lost is not None:
            raise self._lost
        assert self._control_lock is not None, "call connect() first"
        async with self._control_lock:  # why: one outstanding control, so its ack is ours
            waiter = self._waiters[key] = asyncio.get_running_loop().create_future()
            try:
                return await asyncio.wait_for(self._send_and_wait(msg, waiter), timeout_s)
            finally:
                self._waiters.pop(key, None)

    async def _send_and_wait(self, msg: Message, waiter: asyncio.Future[Any]) -> Any:
        await self._send(encode(msg))
        return await waiter

    async def _send(self, frame: bytes) -> None:
        """Send, or raise CoordinatorLost if the socket cannot take it within the deadline."""
        try:
            await self._sock.send(frame)
        except zmq.Again:
            self._set_lost(
                f"could not send to the coordinator at {self.address} within {self.timeout_s} s"
            )
            assert self._lost is not None  # _set_lost just set it
            raise self._lost from None

    async def _receive(self) -> None:
        while True:
            frames = await self._sock.recv_multipart()
            self._last_heard = time.monotonic()
            try:
                if len(frames) != 1:
                    raise ProtocolError("frames", len(frames), "expected exactly 1 frame")
                msg = decode(frames[0], self.limits)
            except ProtocolError as e:
                log.warning("client %r: dropped a bad frame from the coordinator: %s", self.name, e)
                continue
            self._dispatch(msg)

    def _dispatch(self, msg: Message) -> None:
        self.counters[msg.KIND] += 1
        if isinstance(msg, Reply):
            pending = self._take(msg.request_id)
            if pending is None:
                self.counters["stray_reply"] += 1
            else:
                record = dict(msg.record, request_id=msg.request_id, replica=msg.replica)
                record["engine_latency"] = record["latency"]
                record["latency"] = time.perf_counter() - pending.started
                pending.future.set_result(record)
        elif isinstance(msg, Partial):
            pending = self._pending.get(msg.request_id)
            if pending is not None and pending.on_partial is not None:
                pending.on_partial(msg)
        elif isinstance(msg, Error):
            self._on_error(msg)
        elif isinstance(msg, Bye):
            self._set_lost(f"the coordinator at {self.address} shut down")
        elif isinstance(msg, (Ack, Status)):
            waiter = self._waiters.get(msg.of if isinstance(msg, Ack) else "status")
            if waiter is not None and not waiter.done():
                waiter.set_result(msg)

    def _on_error(self, msg: Error) -> None:
        if msg.request_id is not None and msg.request_id in self._pending:
            pending = self._take(msg.request_id)
            assert pending is not None
            pending.future.set_exception(RequestFailed(msg.request_id, msg.code, msg.message))
            return
        if msg.code == "not_connected":  # why: a restarted coordinator no longer knows us
            self._set_lost(f"the coordinator at {self.address} forgot this client ({msg.message})")
            return
        waiters = self._waiters.values() if msg.request_id is None else ()
        for waiter in waiters:  # why: a refused control/connect has no request id
            if not waiter.done():
                waiter.set_exception(
                    RuntimeError(f"coordinator refused ({msg.code}): {msg.message}")
                )
                return
        log.warning("client %r: coordinator says %s: %s", self.name, msg.code, msg.message)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            silent = time.monotonic() - self._last_heard
            if silent > self.timeout_s:
                self._set_lost(
                    f"the coordinator at {self.address} sent nothing for "
                    f"{silent:.1f} s (deadline {self.timeout_s} s)"
                )
                return
            try:
                await self._send(encode(Heartbeat()))
            except CoordinatorLost:
                return

    def _set_lost(self, why: str) -> None:
        lost = CoordinatorLost(f"client {self.name!r}: {why}")
        self._lost = lost
        self._fail_all(lambda rid: lost)
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(lost)

    def _expire(self, rid: str, limit: float) -> None:
        pending = self._take(rid)
        if pending is None:
            return
        pending.future.set_exception(RequestTimeout(rid, limit))
        task = asyncio.ensure_future(self._send_quietly(encode(Abort(rid))))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_quietly(self, frame: bytes) -> None:
        with contextlib.suppress(CoordinatorLost):  # why: already reported to every waiter
            await self._send(frame)

    def _take(self, rid: str) -> _Pending | None:
        pending = self._pending.pop(rid, None)
        if pending is None or pending.future.done():
            return None
        if pending.timer is not None:
            pending.timer.cancel()
        return pending

    def _fail_all(self, error: Callable[[str], BaseException]) -> None:
        for rid in list(self._pending):
            pending = self._take(rid)
            if pending is not None:
                pending.future.set_exception(error(rid))
