"""1,000 requests from 4 concurrent clients over 2 replica processes: each is answered exactly
once, to the client that sent it, under its own id (all four clients reuse the same ids)."""

from __future__ import annotations

import asyncio
from collections import Counter

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.client import Client

CLIENTS, PER_CLIENT, TOKENS = 4, 250, 2


def expected_tokens(prompt: str) -> list[int]:
    base = sum(prompt.encode())
    return [(base + j) % 1000 for j in range(TOKENS)]  # NullEngine's rule


async def one_client(address: str, c: int) -> tuple[Client, list[tuple[str, str, dict]]]:
    client = Client(address, name=f"load-{c}")
    await client.connect()
    futures = []
    for i in range(PER_CLIENT):
        prompt = f"client {c} request {i}"
        future = await client.add_request(
            prompt, SamplingParams(num_tokens_to_generate=TOKENS), request_id=str(i), deadline=60
        )
        futures.append((str(i), prompt, future))
    results = [(rid, prompt, await future) for rid, prompt, future in futures]
    return client, results


async def run(address: str) -> None:
    async with Client(address, name="probe") as probe:
        await probe.wait_for_replicas(2, 30)
    outcomes = await asyncio.gather(*(one_client(address, c) for c in range(CLIENTS)))
    await asyncio.sleep(0.3)  # a duplicate or misrouted reply would arrive by now
    served_by: Counter[str] = Counter()
    for c, (client, results) in enumerate(outcomes):
        assert len(results) == PER_CLIENT
        for rid, prompt, record in results:
            assert record["request_id"] == rid
            assert record["input_prompt"] == prompt, f"client {c} got another client's reply"
            assert record["generated_tokens"] == expected_tokens(prompt)
            served_by[record["replica"]] += 1
        assert client.counters["reply"] == PER_CLIENT
        assert client.counters["stray_reply"] == 0 and client.counters["error"] == 0
        await client.close()
    assert sum(served_by.values()) == CLIENTS * PER_CLIENT
    assert set(served_by) == {"r0", "r1"} and min(served_by.values()) > 100, served_by


def test_thousand_requests_four_clients_two_replicas(services):
    coordinator = services.coordinator()
    for name in ("r0", "r1"):
        services.worker(coordinator.address, name, "--null-engine")
    asyncio.run(asyncio.wait_for(run(coordinator.address), 90))
