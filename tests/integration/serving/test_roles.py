"""Roles bound to secrets, against a live coordinator over real sockets on 127.0.0.1.

Before, any local peer that said ``connect`` with role ``engine`` was acked, sent other
clients' prompts, and its forged ``reply`` reached them as real tokens; any client could
pause, stop or shut the service down.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import zmq

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.client import Client
from logitsmatch.serving.null_engine import NullEngine
from logitsmatch.serving.protocol import Ack, Connect, Error, Reply, Submit, decode, encode
from logitsmatch.serving.roles import ServiceSecrets

RECORD = {
    "input_prompt": "x",
    "generated_text": " forged",
    "generated_tokens": [1],
    "latency": 0.1,
    "finish_reason": "length",
}


class Impostor:
    """A raw DEALER that says whatever it likes."""

    def __init__(self, address: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.connect(address)

    def send(self, msg) -> None:
        self.sock.send(encode(msg))

    def received(self, wait_s: float) -> list:
        out, deadline = [], time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            if self.sock.poll(int(left * 1000) + 1):
                out.append(decode(self.sock.recv()))
        return out

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


@pytest.fixture
def service(threads):
    coordinator = threads.coordinator(heartbeat_s=0.1)
    threads.worker(coordinator.address, "r0", NullEngine(step_delay_s=0.005))
    impostor = Impostor(coordinator.address)
    yield coordinator, impostor
    impostor.close()


def _ask(coro, timeout_s: float = 20):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


@pytest.mark.parametrize("secret", [None, "0" * 64, "wrong"])
def test_a_peer_without_the_engine_secret_gets_no_prompt_and_cannot_reply(service, secret):
    coordinator, impostor = service
    impostor.send(Connect("engine", "evil", secret=secret))
    (answer,) = impostor.received(0.5)
    assert isinstance(answer, Error) and answer.code == "forbidden"

    async def client_run():
        async with Client(coordinator.address) as client:
            await client.wait_for_replicas(1, 10)
            status = await client.status()
            futures = [
                await client.add_request(f"secret prompt {i}", SamplingParams()) for i in range(5)
            ]
            impostor.send(Reply("0", RECORD, "evil"))  # a forged answer to a guessed id
            return status, await asyncio.gather(*futures)

    status, records = _ask(client_run())
    assert [name for name, _ in status.replicas] == ["r0"]  # the impostor is no replica
    assert all(r["generated_text"] != " forged" for r in records)
    assert not [m for m in impostor.received(0.3) if isinstance(m, Submit)]


def test_a_client_cannot_pause_stop_or_shut_down_and_the_operator_can(service):
    coordinator, _ = service

    async def go():
        async with Client(coordinator.address) as client:
            await client.wait_for_replicas(1, 10)
            refused = []
            for verb in (client.pause, client.stop, client.shutdown):
                with pytest.raises(RuntimeError, match=r"refused \(forbidden\)") as info:
                    await verb()
                refused.append(str(info.value))
            record = await (await client.add_request("still served", SamplingParams()))
        secret = coordinator.config.secrets.operator
        async with Client(coordinator.address, operator_secret=secret) as operator:
            await operator.pause()
            paused = (await operator.status()).paused
            await operator.unpause()
        return refused, record, paused

    refused, record, paused = _ask(go())
    assert "needs the operator role" in refused[0]
    assert record["finish_reason"] == "length" and paused


def test_the_engine_secret_does_not_make_an_operator(service):
    coordinator, impostor = service
    engine_secret = coordinator.config.secrets.engine
    impostor.send(Connect("operator", "ops", secret=engine_secret))
    (answer,) = impostor.received(0.5)
    assert isinstance(answer, Error) and answer.code == "forbidden"
    impostor.send(Connect("engine", "r9", secret=engine_secret))  # the right secret: admitted
    assert any(isinstance(m, Ack) and m.of == "connect" for m in impostor.received(0.5))


def test_secrets_are_hidden_checked_and_travel_in_the_environment():
    secrets = ServiceSecrets.generate()
    assert secrets.engine not in repr(secrets)
    assert ServiceSecrets.from_env(secrets.env()) == secrets
    assert ServiceSecrets.from_env({}) is None
    with pytest.raises(ValueError, match="give both"):
        ServiceSecrets.from_env({"LOGITSMATCH_ENGINE_SECRET": secrets.engine})
    with pytest.raises(ValueError, match="must differ"):
        ServiceSecrets(secrets.engine, secrets.engine)
    assert secrets.admits("client", None) and not secrets.admits("engine", secrets.operator)
