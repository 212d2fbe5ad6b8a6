"""Client features against a live coordinator and worker (threads, real sockets)."""

from __future__ import annotations

import asyncio
import time

import pytest
import zmq

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.client import Client
from logitsmatch.serving.errors import CoordinatorLost, RequestFailed, RequestTimeout
from logitsmatch.serving.limits import Limits
from logitsmatch.serving.null_engine import NullEngine
from logitsmatch.serving.protocol import Connect, Control, Error, decode, encode


@pytest.fixture
def stack(threads):
    coordinator = threads.coordinator(heartbeat_s=0.1)
    result = threads.worker(coordinator.address, "r0", NullEngine(step_delay_s=0.005))
    return coordinator, result


def run(coro, timeout_s: float = 30):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


async def connected(address: str, operator_secret: str | None = None) -> Client:
    client = Client(address, operator_secret=operator_secret)
    await client.connect()
    await client.wait_for_replicas(1, 10)
    return client


def test_streaming_yields_every_token_once_then_the_record(stack):
    async def go():
        client = await connected(stack[0].address)
        events = [
            e async for e in client.stream("stream me", SamplingParams(num_tokens_to_generate=6))
        ]
        seen = []
        record = await (
            await client.add_request(
                "cb", SamplingParams(num_tokens_to_generate=4), on_partial=seen.append
            )
        )
        await client.close()
        return events, seen, record

    events, seen, record = run(go())
    streamed = [t for e in events[:-1] for t in e.tokens]
    assert [e.offset for e in events[:-1]] == list(range(len(streamed)))
    final = events[-1].record
    assert streamed == final["generated_tokens"][: len(streamed)] and len(streamed) >= 4
    assert final["finish_reason"] == "length" and len(final["generated_tokens"]) == 6
    assert [t for p in seen for t in p.tokens] == record["generated_tokens"][: len(seen)]


def test_pause_holds_requests_until_unpause(stack):
    async def go():
        client = await connected(stack[0].address, stack[0].config.secrets.operator)
        await client.pause()
        assert (await client.status()).paused
        future = await client.add_request("held", SamplingParams(num_tokens_to_generate=2))
        await asyncio.sleep(0.3)
        held = future.done()
        await client.unpause()
        record = await future
        await client.close()
        return held, record

    held, record = run(go())
    assert not held
    assert record["generated_tokens"] and record["finish_reason"] == "length"


def test_deadline_raises_and_aborts_the_request_at_the_engine(stack):
    async def go():
        client = await connected(stack[0].address)
        future = await client.add_request(
            "slow", SamplingParams(num_tokens_to_generate=10**4), request_id="slow", deadline=0.2
        )
        started = time.monotonic()
        with pytest.raises(RequestTimeout, match=r"'slow': no reply within its deadline of 0\.2 s"):
            await future
        waited = time.monotonic() - started
        deadline = time.monotonic() + 5
        while (await client.status()).replicas != (("r0", 0),):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await client.close()
        return waited

    assert run(go()) < 1.0


def test_abort_returns_the_partial_record(stack):
    async def go():
        client = await connected(stack[0].address)
        first_token = asyncio.Event()  # why: abort only once a token exists, however slow
        future = await client.add_request(
            "x",
            SamplingParams(num_tokens_to_generate=10**4),
            request_id="a",
            on_partial=lambda _: first_token.set(),
        )
        await asyncio.wait_for(first_token.wait(), 10)
        await client.abort("a")
        record = await future
        await client.close()
        return record

    record = run(go())
    assert record["finish_reason"] == "aborted" and 0 < len(record["generated_tokens"]) < 10**4


def test_duplicate_id_is_refused_by_the_client_and_by_the_coordinator(stack):
    async def go():
        client = await connected(stack[0].address)
        await client.add_request("x", SamplingParams(num_tokens_to_generate=50), request_id="d")
        with pytest.raises(ValueError, match="'d' is already in flight"):
            await client.add_request("y", SamplingParams(), request_id="d")
        await client.close()

    run(go())


def test_stop_aborts_in_flight_and_refuses_new_requests(stack):
    coordinator, worker = stack

    async def go():
        client = await connected(coordinator.address, coordinator.config.secrets.operator)
        future = await client.add_request("x", SamplingParams(num_tokens_to_generate=10**4))
        await asyncio.sleep(0.05)
        await client.stop()
        record = await future
        with pytest.raises(RequestFailed, match=r"\(stopped\)"):
            await (await client.add_request("late", SamplingParams()))
        await client.close()
        return record

    assert run(go())["finish_reason"] == "aborted"
    deadline = time.monotonic() + 5
    while "exit" not in worker:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert worker["exit"] == "stop"


def raw_peer(address: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    return sock


def answer(sock: zmq.Socket):
    assert sock.poll(5000)
    return decode(sock.recv())


def test_wrong_protocol_version_is_refused_at_connect(stack):
    sock = raw_peer(stack[0].address)
    sock.send(encode(Connect("client", "old", version=0)))
    reply = answer(sock)
    assert isinstance(reply, Error) and reply.code == "version"
    assert "version 0" in reply.message and "speaks 1" in reply.message
    sock.send(encode(Control("shutdown")))  # still not connected: refused
    assert answer(sock).code == "not_connected"
    sock.close()


def test_an_engine_may_not_send_control_messages(stack):
    sock = raw_peer(stack[0].address)
    sock.send(encode(Connect("engine", "impostor", secret=stack[0].config.secrets.engine)))
    assert answer(sock).of == "connect"
    sock.send(encode(Control("shutdown")))
    reply = answer(sock)
    assert reply.code == "unexpected_kind" and "'shutdown'" in reply.message
    sock.close()

    async def still_serving():
        client = await connected(stack[0].address)
        deadline = time.monotonic() + 5
        while [name for name, _ in (await client.status()).replicas] != ["r0"]:
            assert time.monotonic() < deadline  # the impostor's disconnect is noticed
            await asyncio.sleep(0.02)
        record = await (await client.add_request("ok", SamplingParams(num_tokens_to_generate=2)))
        await client.close()
        return record

    assert run(still_serving())["input_prompt"] == "ok"


def test_no_coordinator_at_connect_is_a_clear_error():
    async def go():
        client = Client("tcp://127.0.0.1:9", heartbeat_s=0.05, coordinator_timeout_s=0.3)
        try:
            with pytest.raises(
                CoordinatorLost,
                match="no answer from the coordinator at "
                r"tcp://127.0.0.1:9 within 0.3 s",
            ):
                await client.connect(timeout_s=0.3)
        finally:
            await client.close()

    run(go())


@pytest.fixture
def narrow(threads):
    """A replica that is sent one request at a time: the rest wait in the coordinator."""
    coordinator = threads.coordinator(heartbeat_s=0.1, replica_window=1)
    result = threads.worker(coordinator.address, "r0", NullEngine(step_delay_s=0.005))
    return coordinator, result


def test_a_waiting_request_can_be_aborted_and_the_next_one_still_runs(narrow):
    async def go():
        client = await connected(narrow[0].address)
        long = await client.add_request(
            "x", SamplingParams(num_tokens_to_generate=400), request_id="long"
        )
        queued = await client.add_request("y", SamplingParams(), request_id="queued")
        after = await client.add_request("z", SamplingParams(num_tokens_to_generate=3))
        await client.abort("queued")
        with pytest.raises(RequestFailed, match=r"aborted before a replica took it"):
            await queued
        records = [await long, await after]
        await client.close()
        return records

    long, after = run(go())
    assert len(long["generated_tokens"]) == 400 and len(after["generated_tokens"]) == 3


def test_two_clients_take_turns_on_a_one_request_window(narrow):
    order: list[str] = []

    async def go():
        a = await connected(narrow[0].address)
        b = await connected(narrow[0].address)
        futures = [
            await a.add_request("a", SamplingParams(num_tokens_to_generate=20), request_id=f"a{i}")
            for i in range(4)
        ]
        futures.append(await b.add_request("b", SamplingParams(num_tokens_to_generate=20)))
        for f, name in zip(futures, ["a0", "a1", "a2", "a3", "b"], strict=True):
            f.add_done_callback(lambda _, name=name: order.append(name))
        await asyncio.gather(*futures)
        await a.close()
        await b.close()

    run(go())
    # a0 was running and a1 next in turn when b arrived; then b, before a's backlog
    assert order.index("b") <= 2, order


def test_stop_fails_the_waiting_requests(narrow):
    coordinator, _ = narrow

    async def go():
        client = await connected(coordinator.address, coordinator.config.secrets.operator)
        running = await client.add_request("x", SamplingParams(num_tokens_to_generate=10**4))
        waiting = await client.add_request("y", SamplingParams())
        await asyncio.sleep(0.05)
        await client.stop()
        with pytest.raises(RequestFailed, match=r"\(stopped\)"):
            await waiting
        record = await running
        await client.close()
        return record

    assert run(go())["finish_reason"] == "aborted"


def test_a_client_past_its_waiting_bytes_gets_busy_and_the_rest_still_run(threads):
    coordinator = threads.coordinator(
        heartbeat_s=0.1, replica_window=1, limits=Limits(max_waiting_bytes_per_client=1000)
    )
    threads.worker(coordinator.address, "r0", NullEngine(step_delay_s=0.005))

    async def go():
        client = await connected(coordinator.address)
        running = await client.add_request("x", SamplingParams(num_tokens_to_generate=200))
        waiting = [
            await client.add_request("p" * 400, SamplingParams(num_tokens_to_generate=2))
            for _ in range(2)
        ]
        refused = await client.add_request("p" * 400, SamplingParams())
        with pytest.raises(RequestFailed, match=r"\(busy\): this client already has 800 bytes"):
            await refused
        records = [await running, *[await w for w in waiting]]
        await client.close()
        return records

    assert [len(r["generated_tokens"]) for r in run(go())] == [200, 2, 2]
