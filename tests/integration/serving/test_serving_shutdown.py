"""Shutting down leaves no process and no listening port behind."""

from __future__ import annotations

import asyncio
import threading
import time

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.client import Client
from logitsmatch.serving.errors import CoordinatorLost


async def shutdown_with_requests_in_flight(address: str, operator_secret: str) -> list:
    async with Client(address, operator_secret=operator_secret) as client:
        await client.wait_for_replicas(2, 30)
        started = [asyncio.Event() for _ in range(6)]  # why: shut down once each has a token
        futures = [
            await client.add_request(
                f"p{i}",
                SamplingParams(num_tokens_to_generate=500),
                on_partial=lambda _, event=event: event.set(),
            )
            for i, event in enumerate(started)
        ]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in started)), 10)
        await client.shutdown()
        results = await asyncio.gather(*futures, return_exceptions=True)
        deadline = time.monotonic() + 5  # told "bye": no need to wait for a heartbeat timeout
        while True:
            try:
                await client.add_request("after", SamplingParams())
            except CoordinatorLost as e:
                assert "shut down" in str(e)
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        return results


def test_client_shutdown_stops_engines_and_coordinator(services, leftovers):
    coordinator = services.coordinator()
    port = int(coordinator.address.rsplit(":", 1)[1])
    workers = [
        services.worker(coordinator.address, n, "--null-engine", "--null-step-delay-s", "0.01")
        for n in ("r0", "r1")
    ]
    assert leftovers.listening(port)
    results = asyncio.run(
        asyncio.wait_for(
            shutdown_with_requests_in_flight(coordinator.address, coordinator.secrets.operator), 30
        )
    )
    # in-flight requests come back aborted with what they had generated: none hangs
    assert [r["finish_reason"] for r in results] == ["aborted"] * 6
    assert all(0 < len(r["generated_tokens"]) < 500 for r in results)
    assert [w.process.wait(10) for w in workers] == [0, 0]
    assert coordinator.process.wait(10) == 0
    assert "exits: shutdown" in workers[0].log_tail()
    assert leftovers.children() == []
    assert not leftovers.listening(port)


def test_sigterm_shuts_the_coordinator_and_its_engines_down(services, leftovers):
    coordinator = services.coordinator()
    port = int(coordinator.address.rsplit(":", 1)[1])
    worker = services.worker(coordinator.address, "r0", "--null-engine")

    async def ready() -> None:
        async with Client(coordinator.address) as client:
            await client.wait_for_replicas(1, 30)

    asyncio.run(asyncio.wait_for(ready(), 30))
    assert coordinator.stop(10) == 0  # SIGTERM
    assert worker.process.wait(10) == 0
    assert leftovers.children() == []
    assert not leftovers.listening(port)


def test_sigterm_on_a_worker_makes_it_leave_cleanly(services):
    coordinator = services.coordinator()
    worker = services.worker(coordinator.address, "r0", "--null-engine")

    async def check() -> None:
        async with Client(coordinator.address) as client:
            await client.wait_for_replicas(1, 30)
            assert worker.stop(10) == 0
            deadline = time.monotonic() + 5
            while (await client.status()).replicas:  # it said bye: gone at once
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)

    asyncio.run(asyncio.wait_for(check(), 30))


def test_client_close_leaves_no_thread_or_socket(threads):
    coordinator = threads.coordinator()
    threads.worker(coordinator.address, "r0")
    before = threading.active_count()

    async def use() -> Client:
        client = Client(coordinator.address)
        await client.connect()
        await client.wait_for_replicas(1, 10)
        await (await client.add_request("x", SamplingParams(num_tokens_to_generate=2)))
        pending = await client.add_request("y", SamplingParams(num_tokens_to_generate=10**4))
        await client.close()
        assert pending.done()
        return client

    client = asyncio.run(asyncio.wait_for(use(), 30))
    assert client.closed
    assert threading.active_count() == before
