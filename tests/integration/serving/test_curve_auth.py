"""CURVE: admitted clients and engines work end to end; an unknown key gets nowhere."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
import zmq
import zmq.auth

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


def test_serve_with_curve_from_the_command_line_admits_only_the_listed_client(tmp_path):
    """serve --curve-secret-cert/--curve-authorized-dir: its ranks get engine keys of their own
    (in their environment), an authorized client is answered, and plaintext, a wrong server
    key and an unlisted key get nothing."""
    (tmp_path / "server").mkdir()
    (tmp_path / "clients").mkdir()
    _, server_secret_file = zmq.auth.create_certificates(tmp_path / "server", "server")
    client_public_file, client_secret_file = zmq.auth.create_certificates(tmp_path, "client")
    (tmp_path / "clients" / "client.key").write_bytes(Path(client_public_file).read_bytes())
    server_public, _ = zmq.auth.load_certificate(server_secret_file)
    client_public, client_secret = zmq.auth.load_certificate(client_secret_file)
    listed = CurveClientKeys(server_public, client_public, client_secret)
    command = [sys.executable, "-m", "logitsmatch.cli", "serve", "--model", "tiny"]
    command += ["--curve-secret-cert", str(server_secret_file)]
    command += ["--curve-authorized-dir", str(tmp_path / "clients")]
    command += ["--run-dir", str(tmp_path / "run")]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        address = re.search(r"coordinator at (tcp://\S+)", proc.stdout.readline()).group(1)

        async def go():
            async with Client(address, curve=listed) as client:
                await client.wait_for_replicas(1, 120)  # the rank got in with its own keys
                record = await (
                    await client.add_request("secret", SamplingParams(num_tokens_to_generate=2))
                )
            refused = []
            wrong_server = CurveClientKeys.generate(zmq.curve_keypair()[0])
            for keys in (None, wrong_server, CurveClientKeys.generate(server_public)):
                other = Client(address, curve=keys, heartbeat_s=0.1, coordinator_timeout_s=1.0)
                try:
                    with pytest.raises(CoordinatorLost, match="no answer"):
                        await other.connect(timeout_s=1.0)
                    refused.append(keys)
                finally:
                    await other.close()
            return record, refused

        record, refused = asyncio.run(asyncio.wait_for(go(), 180))
        assert record["input_prompt"] == "secret" and len(record["generated_tokens"]) == 2
        assert len(refused) == 3
    finally:
        proc.terminate()
        proc.wait(60)
