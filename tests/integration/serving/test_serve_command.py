"""`logitsmatch serve`: prints its address, answers clients, shuts down clean on SIGINT."""

import asyncio
import re
import signal
import subprocess
import sys
import time

import psutil

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.client import Client


async def ask(address: str) -> dict:
    async with Client(address, name="test") as client:
        await client.wait_for_replicas(2, timeout_s=120)
        futures = [
            await client.add_request(f"prompt {i}", SamplingParams(num_tokens_to_generate=3))
            for i in range(6)
        ]
        return {i: await f for i, f in enumerate(futures)}


def test_serve_answers_then_exits_cleanly_on_sigint(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "logitsmatch.cli",
            "serve",
            "--model",
            "tiny",
            "--data-parallel-size",
            "2",
            "--run-dir",
            str(tmp_path / "serve"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        found = re.search(r"coordinator at (tcp://127\.0\.0\.1:\d+)", line)
        assert found, line + proc.stderr.read()
        address = found.group(1)
        records = asyncio.run(asyncio.wait_for(ask(address), 180))
        assert sorted(records) == list(range(6))
        assert all(len(r["generated_tokens"]) == 3 for r in records.values())
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, proc.stderr.read()[-2000:]
    time.sleep(0.5)
    assert [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE] == []
    port = int(address.rsplit(":", 1)[1])
    listening = [
        c
        for c in psutil.net_connections("tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
    ]
    assert listening == []


def _listening(processes: list[psutil.Process]) -> set[tuple[str, int]]:
    addresses = set()
    for p in processes:
        try:
            addresses |= {tuple(c.laddr) for c in p.net_connections("tcp") if c.status == "LISTEN"}
        except psutil.NoSuchProcess:
            continue
    return addresses


def test_nothing_outlives_serve_killed_by_sigkill(tmp_path):
    """Before: coordinator, torchrun and both ranks lived on under PID 1, ports open (two of
    torchrun's on every interface). Now no launcher agent is left, and every port is loopback."""
    command = [sys.executable, "-m", "logitsmatch.cli", "serve", "--model", "tiny"]
    command += ["--tensor-model-parallel-size", "2", "--run-dir", str(tmp_path / "serve")]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert "coordinator at tcp://127.0.0.1:" in proc.stdout.readline()
        serve = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        while (
            len([c for c in serve.children(recursive=True) if "rank_main" in " ".join(c.cmdline())])
            < 2
        ):
            assert time.monotonic() < deadline, "the ranks did not start"
            time.sleep(0.2)
        # the coordinator's port and each gloo rank's, once the ranks have joined
        while len(addresses := _listening(tree := serve.children(recursive=True))) < 3:
            assert time.monotonic() < deadline, f"the ranks never listened: {addresses}"
            time.sleep(0.2)
        assert {ip for ip, _ in addresses} <= {"127.0.0.1", "::1"}, addresses
        ports = {port for _, port in addresses}
        proc.kill()
        proc.wait(10)
        gone_by = time.monotonic() + 10
        while time.monotonic() < gone_by:
            alive = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            if not alive:
                break
            time.sleep(0.2)
        assert alive == [], [p.cmdline()[:4] for p in alive]
        listening = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == "LISTEN"}
        assert ports & listening == set()
    finally:
        for p in psutil.Process().children(recursive=True):
            p.kill()
