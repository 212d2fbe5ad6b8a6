"""Coordinator overhead: requests/s and added latency with an engine that returns at once.

Two set-ups, measured in the same run, with the same Client code and a NullEngine generating
one token per request:

- direct:      client(s) -> one process that binds a ROUTER and runs the engine itself
- coordinator: client(s) -> coordinator process -> worker process (run_worker + NullEngine)

Each client keeps ``window`` requests outstanding (window 1: latency; larger: throughput).
"Added" latency is coordinator minus direct at the same percentile.

    python benchmarks/bench_coordinator.py [--requests 2000] [--windows 1 32]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import tempfile
import time

import zmq

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.client import Client
from logitsmatch.serving.launch import start_coordinator, start_worker
from logitsmatch.serving.null_engine import NullEngine
from logitsmatch.serving.protocol import (
    Ack,
    Connect,
    Heartbeat,
    Reply,
    Status,
    Submit,
    decode,
    encode,
)


def direct_server(ready: mp.Queue, stop: mp.Event) -> None:
    """The baseline: a ROUTER that feeds the engine directly, no coordinator hop."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind("tcp://127.0.0.1:*")
    ready.put(sock.getsockopt(zmq.LAST_ENDPOINT).decode())
    engine, owner = NullEngine(), {}
    while not stop.is_set():
        if sock.poll(0 if engine.has_unfinished() else 50):
            while sock.poll(0):
                identity, frame = sock.recv_multipart()
                msg = decode(frame)
                if isinstance(msg, Connect):
                    sock.send_multipart([identity, encode(Ack("connect", "direct"))])
                elif isinstance(msg, Status):
                    sock.send_multipart([identity, encode(Status((("direct", 0),)))])
                elif isinstance(msg, Heartbeat):
                    sock.send_multipart([identity, encode(Heartbeat())])
                elif isinstance(msg, Submit):
                    key = f"{identity.hex()}/{msg.request_id}"
                    owner[key] = (identity, msg.request_id)
                    engine.add_request(msg.prompt, msg.sampling, request_id=key)
        for record in engine.step():
            identity, rid = owner.pop(record.request_id)
            sock.send_multipart([identity, encode(Reply(rid, record.to_json(), "direct"))])
    sock.close(linger=0)
    ctx.term()


async def client_loop(address: str, name: str, count: int, window: int) -> list[float]:
    params = SamplingParams(num_tokens_to_generate=1)
    latencies: list[float] = []
    async with Client(address, name=name) as client:
        await client.wait_for_replicas(1, 30)
        sem = asyncio.Semaphore(window)

        async def one(i: int) -> None:
            async with sem:
                record = await (await client.add_request(f"{name} {i}", params, deadline=60))
                latencies.append(record["latency"])

        await asyncio.gather(*(one(i) for i in range(count)))
    return latencies


async def measure(address: str, clients: int, window: int, requests: int) -> tuple[float, list]:
    per_client = requests // clients
    start = time.perf_counter()
    results = await asyncio.gather(
        *(client_loop(address, f"c{c}", per_client, window) for c in range(clients))
    )
    elapsed = time.perf_counter() - start
    latencies = sorted(x for r in results for x in r)
    return len(latencies) / elapsed, latencies


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=2000, help="per configuration")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    p.add_argument("--windows", type=int, nargs="+", default=[1, 32])
    args = p.parse_args()

    ready: mp.Queue = mp.Queue()
    stop = mp.Event()
    direct = mp.Process(target=direct_server, args=(ready, stop))
    direct.start()
    direct_address = ready.get(timeout=30)
    logs = tempfile.TemporaryDirectory(prefix="bench-coordinator-")
    coordinator = start_coordinator(log_dir=logs.name)
    worker = start_worker(
        coordinator.address,
        "r0",
        "--null-engine",
        secrets=coordinator.secrets,
        log_dir=logs.name,
    )
    rows = []
    try:
        for clients in args.clients:
            for window in args.windows:
                row = {"clients": clients, "window": window}
                for label, address in (("direct", direct_address), ("coord", coordinator.address)):
                    asyncio.run(measure(address, clients, window, 200))  # warm-up
                    rate, lat = asyncio.run(measure(address, clients, window, args.requests))
                    row[label] = (
                        rate,
                        percentile(lat, 0.5),
                        percentile(lat, 0.99),
                        statistics.fmean(lat),
                    )
                rows.append(row)
    finally:
        worker.stop()
        coordinator.stop()
        stop.set()
        direct.join(10)
        logs.cleanup()

    print(
        f"\n{args.requests} requests per row; NullEngine, 1 token each; latency in ms "
        "(client-side, send to reply)"
    )
    head = (
        f"{'clients':>7} {'window':>6} | {'direct req/s':>12} {'p50':>6} {'p99':>6} | "
        f"{'coord req/s':>11} {'p50':>6} {'p99':>6} | {'added p50':>9} {'added p99':>9}"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        d, c = row["direct"], row["coord"]
        print(
            f"{row['clients']:>7} {row['window']:>6} | {d[0]:>12.0f} {d[1] * 1e3:>6.2f} "
            f"{d[2] * 1e3:>6.2f} | {c[0]:>11.0f} {c[1] * 1e3:>6.2f} {c[2] * 1e3:>6.2f} | "
            f"{(c[1] - d[1]) * 1e3:>9.2f} {(c[2] - d[2]) * 1e3:>9.2f}"
        )


if __name__ == "__main__":
    main()
