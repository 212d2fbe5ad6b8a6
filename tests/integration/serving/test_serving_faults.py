"""Faults with real processes: a replica killed, a client vanishing, the coordinator killed."""

from __future__ import annotations

import asyncio
import time

import pytest
import zmq

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.client import Client
from logitsmatch.serving.errors import CoordinatorLost, RequestFailed
from logitsmatch.serving.protocol import Connect, Submit, encode

FAST = ("--heartbeat-s", "0.1", "--engine-timeout-s", "20")  # death seen by disconnect, not timeout


async def killed_replica(services, coordinator) -> None:
    async with Client(coordinator.address, name="victim-watcher") as client:
        await client.wait_for_replicas(2, 30)
        params = SamplingParams(num_tokens_to_generate=40)  # 40 steps x 20 ms
        futures = [await client.add_request(f"p{i}", params, deadline=30) for i in range(12)]
        await asyncio.sleep(0.2)
        services.started[2].kill()  # r1
        killed = time.monotonic()
        results = await asyncio.gather(*futures, return_exceptions=True)
        done = [r for r in results if isinstance(r, dict)]
        failed = [r for r in results if isinstance(r, BaseException)]
        assert len(done) == len(failed) == 6  # round-robin: half on each replica
        assert {r["replica"] for r in done} == {"r0"}
        for error in failed:
            assert isinstance(error, RequestFailed) and error.code == "replica_failed"
            assert "replica 'r1'" in str(error) and "disconnected" in str(error)
        status = await client.status()
        assert status.replicas == (("r0", 0),)
    # r0's requests need ~0.8 s; r1's failures came well before its 20 s heartbeat deadline
    assert time.monotonic() - killed < 5


def test_killed_replica_fails_its_requests_fast_and_the_other_completes(services):
    coordinator = services.coordinator(*FAST, "--policy", "round_robin")
    for name in ("r0", "r1"):
        services.worker(coordinator.address, name, "--null-engine", "--null-step-delay-s", "0.02")
    asyncio.run(asyncio.wait_for(killed_replica(services, coordinator), 60))


async def vanishing_clients(address: str) -> None:
    params = SamplingParams(num_tokens_to_generate=20)
    async with Client(address, name="steady") as steady:
        await steady.wait_for_replicas(1, 30)
        ctx = zmq.Context()
        raw = ctx.socket(zmq.DEALER)  # submits, then its process "dies" (socket gone, no bye)
        raw.connect(address)
        raw.send(encode(Connect("client", "raw")))
        assert raw.poll(5000)
        raw.recv()
        for i in range(5):
            raw.send(encode(Submit(str(i), "vanishing", params)))
        polite = Client(address, name="polite")  # closes with requests in flight (says bye)
        await polite.connect()
        endless = SamplingParams(num_tokens_to_generate=10**4)  # why: still in flight at close
        polite_futures = [await polite.add_request("leaving", endless) for _ in range(5)]
        futures = [await steady.add_request(f"steady {i}", params, str(i)) for i in range(10)]
        await asyncio.sleep(0.05)
        raw.close(linger=0)
        ctx.term()
        await polite.close()
        for future in polite_futures:
            with pytest.raises(RequestFailed, match="client_closed"):
                await future
        records = await asyncio.gather(*futures)
        assert [r["input_prompt"] for r in records] == [f"steady {i}" for i in range(10)]
        assert steady.counters["error"] == 0
        deadline = time.monotonic() + 5
        while (await steady.status()).replicas != (("r0", 0),):  # nothing left dangling
            assert time.monotonic() < deadline, await steady.status()
            await asyncio.sleep(0.05)


def test_a_client_vanishing_mid_request_does_not_disturb_others(services):
    coordinator = services.coordinator(*FAST)
    services.worker(coordinator.address, "r0", "--null-engine", "--null-step-delay-s", "0.01")
    asyncio.run(asyncio.wait_for(vanishing_clients(coordinator.address), 60))


async def killed_coordinator(coordinator, worker) -> float:
    client = Client(coordinator.address, heartbeat_s=0.2, coordinator_timeout_s=2.0)
    await client.connect()
    try:
        await client.wait_for_replicas(1, 30)
        future = await client.add_request(
            "forever", SamplingParams(num_tokens_to_generate=5000), deadline=60
        )
        await asyncio.sleep(0.2)
        coordinator.kill()
        killed = time.monotonic()
        with pytest.raises(CoordinatorLost, match="sent nothing for"):
            await future
        assert time.monotonic() - killed < 2.0 + 2.0  # its deadline, plus slack for a busy CI box
        with pytest.raises(CoordinatorLost):
            await client.add_request("after", SamplingParams())
        return killed
    finally:
        await client.close()


def test_killed_coordinator_makes_worker_and_client_exit_with_a_clear_error(services):
    coordinator = services.coordinator("--heartbeat-s", "0.2")
    worker = services.worker(
        coordinator.address,
        "r0",
        "--null-engine",
        "--null-step-delay-s",
        "0.01",
        "--coordinator-timeout-s",
        "2",
    )
    killed = asyncio.run(asyncio.wait_for(killed_coordinator(coordinator, worker), 60))
    code = worker.process.wait(10)
    assert time.monotonic() - killed < 2.0 + 4.0
    assert code == 3
    assert "the coordinator at tcp://127.0.0.1:" in worker.log_tail()
    assert "sent nothing for 2.0 s" in worker.log_tail()
