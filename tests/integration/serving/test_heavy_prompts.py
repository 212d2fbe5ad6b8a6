"""Valid but heavy requests cannot take the service down, nor starve another client.

Before: 32 submits of a 1 MB prompt (inside the size limit) were tokenized in one worker
iteration with no heartbeat, so the coordinator declared the replica dead and failed every
request. Now an iteration takes at most about 1 MB of prompts and heartbeats go out between.
And a second client's short request no longer waits for the whole backlog to be tokenized
(FIFO at the replica): the coordinator sends a replica at most 4 MB of prompts at once and
lets the clients take turns (fair_queue.py), so it waits behind a few heavy prompts at most.
Real LLMEngine (tiny model, real tokenizer), real sockets, a short heartbeat deadline.
"""

from __future__ import annotations

import asyncio
import time

from logitsmatch.engine.build import build_engine
from logitsmatch.engine.options import EngineOptions
from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.client import Client
from logitsmatch.serving.errors import RequestFailed

DEADLINE_S = 3.0  # the replica's heartbeat deadline; 16 prompts take ~8 s to tokenize here
HEAVY = ("word " * 200_000)[:1_000_000]
BOUND_S = 8.0  # the short request's bound; the 32 heavy prompts take 10-14 s here


def test_heavy_prompts_from_one_client_do_not_silence_the_replica(threads):
    coordinator = threads.coordinator(heartbeat_s=0.2, engine_timeout_s=DEADLINE_S)
    engine = build_engine(EngineOptions(model="tiny", device="cpu"))
    worker = threads.worker(
        coordinator.address, "r0", engine, heartbeat_s=0.2, coordinator_timeout_s=DEADLINE_S
    )

    async def go():
        async with (
            Client(coordinator.address, name="heavy") as heavy,
            Client(coordinator.address, name="light") as light,
        ):
            await light.wait_for_replicas(1, 10)
            done: list[float] = []
            futures = []
            for _ in range(32):
                future = await heavy.add_request(HEAVY, SamplingParams(num_tokens_to_generate=1))
                # why a callback: it runs when the outcome arrives, however busy the test is
                future.add_done_callback(lambda _: done.append(time.monotonic()))
                futures.append(future)
            start = time.monotonic()
            short = await light.add_request("hello", SamplingParams(num_tokens_to_generate=2))
            record = await short
            waited = time.monotonic() - start
            outcomes = await asyncio.gather(*futures, return_exceptions=True)
            status = await light.status()
        return outcomes, record, waited, start, sorted(done), status

    outcomes, record, waited, start, heavy_done, status = asyncio.run(asyncio.wait_for(go(), 180))
    # each heavy prompt is refused by the engine on its own merits, never by a dead replica
    assert all(isinstance(o, RequestFailed) and o.code == "rejected" for o in outcomes), outcomes
    assert all("max sequence length" in o.message for o in outcomes)
    assert len(record["generated_tokens"]) == 2
    assert waited < BOUND_S, waited
    # fair, not FIFO: it went out behind the few heavy prompts the replica held (4 MB), so
    # much of the backlog, which a FIFO replica would have tokenized first, finished after it
    after = sum(t > start + waited for t in heavy_done)
    backlog = heavy_done[-1] - start
    print(f"short request: {waited:.2f} s; {after} of 32 heavy after it; backlog {backlog:.1f} s")
    assert after >= 10, (after, waited)
    assert [name for name, _ in status.replicas] == ["r0"]  # alive afterwards
    assert "error" not in worker and "exit" not in worker
