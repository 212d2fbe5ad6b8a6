"""CURVE: admitted clients and engines work end to end; an unknown key gets nowhere."""

from __future__ import annotations

import asyncio

import pytest
import zmq

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.client import Client
from logitsmatch.serving.errors import CoordinatorLost
from logitsmatch.serving.security import CurveClientKeys, CurveServerKeys


def test_curve_admits_listed_keys_only(threads):
    server_public, server_secret = zmq.curve_keypair()
    engine_keys = CurveClientKeys.generate(server_public)
    client_keys = CurveClientKeys.generate(server_public)
    stranger_keys = CurveClientKeys.generate(server_public)
    server = CurveServerKeys(
        server_public, server_secret, frozenset({engine_keys.public, client_keys.public})
    )
    coordinator = threads.coordinator(curve=server)
    threads.worker(coordinator.address, "r0", curve=engine_keys)

    async def go():
        async with Client(coordinator.address, curve=client_keys) as client:
            await client.wait_for_replicas(1, 10)
            record = await (
                await client.add_request("secret", SamplingParams(num_tokens_to_generate=2))
            )
        stranger = Client(
            coordinator.address, curve=stranger_keys, heartbeat_s=0.1, coordinator_timeout_s=1.0
        )
        try:
            with pytest.raises(CoordinatorLost, match="no answer"):
                await stranger.connect(timeout_s=1.0)
        finally:
            await stranger.close()
        return record

    record = asyncio.run(asyncio.wait_for(go(), 30))
    assert record["input_prompt"] == "secret" and record["replica"] == "r0"
