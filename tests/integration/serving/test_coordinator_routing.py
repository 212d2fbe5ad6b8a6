"""Routing through a live coordinator, with raw engine sockets standing in for replicas."""

from __future__ import annotations

import asyncio
import time

import pytest
import zmq

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.client import Client
from logitsmatch.serving.protocol import Ack, Connect, Heartbeat, Reply, Submit, decode, encode

RECORD = {
    "input_prompt": "p",
    "generated_text": "t",
    "generated_tokens": [1],
    "latency": 0.0,
    "finish_reason": "length",
}


class RawEngine:
    def __init__(self, address: str, name: str, secret: str) -> None:
        self.name = name
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(address)
        self.sock.send(encode(Connect("engine", name, secret=secret)))
        assert isinstance(self.next(5), Ack)

    def next(self, timeout_s: float):
        """The next message that is not a heartbeat, or None."""
        while self.sock.poll(int(timeout_s * 1000)):
            msg = decode(self.sock.recv())
            if not isinstance(msg, Heartbeat):
                return msg
        return None

    def reply(self, engine_id: str) -> None:
        self.sock.send(encode(Reply(engine_id, RECORD, self.name)))


@pytest.fixture
def start(threads):
    made: list[RawEngine] = []

    def start(**config):
        coordinator = threads.coordinator(**config)
        secret = coordinator.config.secrets.engine
        made.extend(RawEngine(coordinator.address, name, secret) for name in ("r0", "r1"))
        return coordinator, made[0], made[1]

    yield start
    for engine in made:
        engine.sock.close()


async def submit_and_find(client: Client, rid: str, engines):
    """Submit one request; returns (future, the engine that got it, its engine-side id)."""
    future = await client.add_request("p", SamplingParams(), request_id=rid)
    got = {engine.name: None for engine in engines}
    deadline = time.monotonic() + 10  # why not one short wait: a loaded CI box can be slow
    while not any(isinstance(msg, Submit) for msg in got.values()):
        assert time.monotonic() < deadline, f"no engine received request {rid!r} within 10 s"
        got = {engine.name: got[engine.name] or engine.next(0.05) for engine in engines}
    got = {engine.name: got[engine.name] or engine.next(0.3) for engine in engines}  # a 2nd copy?
    (holder,) = [e for e in engines if isinstance(got[e.name], Submit)]
    return future, holder, got[holder.name].request_id


def test_only_the_replica_holding_a_request_may_answer_it(start):
    coordinator, a, b = start()

    async def go():
        async with Client(coordinator.address) as client:
            future, holder, engine_id = await submit_and_find(client, "mine", (a, b))
            (b if holder is a else a).reply(engine_id)  # a forged answer
            await asyncio.sleep(0.2)
            assert not future.done()
            holder.reply(engine_id)
            record = await asyncio.wait_for(future, 5)
            assert (record["replica"], record["request_id"]) == (holder.name, "mine")

    asyncio.run(asyncio.wait_for(go(), 30))


def test_least_outstanding_sends_to_the_least_loaded(start):
    coordinator, a, b = start()

    async def go():
        async with Client(coordinator.address) as client:
            first, x, x_id = await submit_and_find(client, "1", (a, b))
            _, y, _ = await submit_and_find(client, "2", (a, b))
            assert y is not x  # x holds one, y none
            x.reply(x_id)
            await asyncio.wait_for(first, 5)  # now x holds none, y one
            _, z, _ = await submit_and_find(client, "3", (a, b))
            assert z is x

    asyncio.run(asyncio.wait_for(go(), 30))


def test_a_custom_policy_is_obeyed(start):
    coordinator, a, b = start(policy=lambda loads: len(loads) - 1)

    async def go():
        async with Client(coordinator.address) as client:
            holders = [(await submit_and_find(client, str(i), (a, b)))[1] for i in range(3)]
            assert holders == [b, b, b]

    asyncio.run(asyncio.wait_for(go(), 30))


def test_round_robin(start):
    coordinator, a, b = start(policy="round_robin")

    async def go():
        async with Client(coordinator.address) as client:
            holders = [(await submit_and_find(client, str(i), (a, b)))[1] for i in range(4)]
            assert holders == [a, b, a, b]

    asyncio.run(asyncio.wait_for(go(), 30))
