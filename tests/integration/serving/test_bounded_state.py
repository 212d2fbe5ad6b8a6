"""No peer makes the coordinator hold unbounded state: a client that never reads is dropped at
its queue's bound, clients that vanish without bye are forgotten, and a good client beside
them is served throughout. Real sockets on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time

import psutil
import zmq

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.client import Client
from logitsmatch.serving.limits import Limits
from logitsmatch.serving.null_engine import NullEngine
from logitsmatch.serving.protocol import Connect, Status, encode


def _served(address: str) -> dict:
    async def go():
        async with Client(address) as client:
            await client.wait_for_replicas(1, 10)
            return await (await client.add_request("ok", SamplingParams(num_tokens_to_generate=2)))

    return asyncio.run(asyncio.wait_for(go(), 30))


def _until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_client_that_never_reads_is_dropped_at_its_queue_bound(threads):
    coordinator = threads.coordinator(limits=Limits(max_queued_per_peer=500))
    threads.worker(coordinator.address, "r0", NullEngine())
    ctx = zmq.Context()
    greedy = ctx.socket(zmq.DEALER)
    greedy.setsockopt(zmq.RCVHWM, 1)  # why: it reads nothing, so its own buffer stays small
    greedy.setsockopt(zmq.SNDTIMEO, 5000)
    greedy.connect(coordinator.address)
    greedy.send(encode(Connect("client", "greedy")))
    assert _until(lambda: len(coordinator.registry.clients) == 1, 5)
    status = encode(Status())
    for _ in range(300_000):  # each asks for an answer it never reads (more than TCP buffers)
        greedy.send(status)
    assert _until(lambda: not coordinator.registry.clients, 20)
    assert _served(coordinator.address)["finish_reason"] == "length"
    greedy.close(linger=0)
    ctx.term()


def test_clients_that_vanish_without_bye_are_forgotten(threads):
    coordinator = threads.coordinator(client_timeout_s=1.0, heartbeat_s=0.1, engine_timeout_s=5)
    threads.worker(coordinator.address, "r0", NullEngine())
    ctx = zmq.Context()
    for i in range(300):
        ghost = ctx.socket(zmq.DEALER)
        ghost.connect(coordinator.address)
        ghost.send(encode(Connect("client", f"ghost-{i}")))
        assert ghost.poll(5000)  # its ack: it is registered
        ghost.close(linger=0)  # gone without a bye
    assert len(coordinator.registry.clients) >= 250  # (the first may be forgotten already)
    assert _until(lambda: not coordinator.registry.clients, 10)
    assert _served(coordinator.address)["finish_reason"] == "length"  # a live one is kept
    ctx.term()


def test_the_coordinator_process_stays_small_under_unread_floods_and_vanished_clients(services):
    """The figures of the report, in a real coordinator process: 300,000 frames from a client
    that never reads (before: 75 -> 164 MB), then 8,000 clients gone without bye."""
    coordinator = services.coordinator("--client-timeout-s", "2")
    process = psutil.Process(coordinator.process.pid)
    ctx = zmq.Context()
    start_rss = process.memory_info().rss

    flood = ctx.socket(zmq.DEALER)
    flood.setsockopt(zmq.RCVHWM, 1)
    flood.setsockopt(zmq.SNDTIMEO, 5000)
    flood.connect(coordinator.address)
    flood.send(encode(Connect("client", "flood")))
    status = encode(Status())
    for _ in range(300_000):
        flood.send(status)
    time.sleep(2)
    flood_growth = process.memory_info().rss - start_rss
    flood.close(linger=0)

    for i in range(8000):
        ghost = ctx.socket(zmq.DEALER)
        ghost.connect(coordinator.address)
        ghost.send(encode(Connect("client", f"ghost-{i}")))
        assert ghost.poll(5000)
        ghost.close(linger=0)
    time.sleep(4)  # past the 2 s client deadline: all forgotten
    total_growth = process.memory_info().rss - start_rss
    ctx.term()
    print(
        f"coordinator RSS growth: {flood_growth >> 20} MB after the flood, "
        f"{total_growth >> 20} MB after 8000 vanished clients"
    )
    assert flood_growth < 64 << 20
    assert total_growth < 80 << 20
