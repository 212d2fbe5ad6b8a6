"""Records served through coordinator + worker processes (the real engine, "tiny" model, two
single-rank replicas) equal an in-process engine run: tokens identical, logprobs within 1e-5."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from logitsmatch.engine.engine import LLMEngine
from logitsmatch.engine.loader import build_stage, resolve
from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.client import Client
from logitsmatch.serving.driver import run_driver
from logitsmatch.serving.errors import RequestFailed
from logitsmatch.serving.launch import start_coordinator, start_worker

SAMPLING = SamplingParams(num_tokens_to_generate=6, top_k=1, return_log_probs=True)
PROMPTS = [
    f"Request {i}: the quick brown fox" + " jumps over the lazy dog" * (i % 4) for i in range(32)
]
BURST = 8


@pytest.fixture(scope="module")
def address(tmp_path_factory):
    logs = tmp_path_factory.mktemp("zmq-equivalence")
    coordinator = start_coordinator(log_dir=logs)
    workers = [
        start_worker(
            coordinator.address, name, "--model", "tiny", secrets=coordinator.secrets, log_dir=logs
        )
        for name in ("r0", "r1")
    ]

    async def both_registered() -> None:
        async with Client(coordinator.address) as client:
            await client.wait_for_replicas(2, 60)

    # why: a test run alone (pytest -k) must not submit before the workers have registered
    asyncio.run(both_registered())
    yield coordinator.address
    for service in (*workers, coordinator):
        service.stop(10)


@pytest.fixture(scope="module")
def engine():
    spec = resolve("tiny")
    return LLMEngine(build_stage(spec), spec.tokenizer())


def reference(engine: LLMEngine, prompts: list[str], burst: int) -> list:
    """The in-process run, with the driver's per-burst lengths (request i of a burst: n + i)."""
    for i, prompt in enumerate(prompts):
        params = replace(
            SAMPLING, num_tokens_to_generate=SAMPLING.num_tokens_to_generate + i % burst
        )
        engine.add_request(prompt, params, request_id=str(i))
    done = {}
    while engine.has_unfinished():
        done.update((r.request_id, r) for r in engine.step())
    return [done[str(i)] for i in range(len(prompts))]


@pytest.mark.parametrize("count", [1, 32])
def test_served_records_equal_the_in_process_engine(address, engine, count):
    prompts = PROMPTS[:count]
    out = run_driver(address, prompts, SAMPLING, BURST, min_replicas=2, deadline_s=120)
    expected = reference(engine, prompts, BURST)
    assert list(out) == [str(i) for i in range(count)] + [
        "throughput",
        "lifetime_prefill_token_count",
    ]
    prompt_tokens = sum(len(engine.tokenizer.encode(p)) for p in prompts)
    assert out["lifetime_prefill_token_count"] == prompt_tokens  # each prefilled once
    for i, record in enumerate(expected):
        got = out[str(i)]
        assert got["input_prompt"] == record.input_prompt
        assert got["generated_tokens"] == record.generated_tokens, f"request {i}"
        assert len(got["generated_tokens"]) == SAMPLING.num_tokens_to_generate + i % BURST
        assert got["generated_text"] == record.generated_text
        assert len(got["logprobs"]) == len(record.logprobs)
        assert (
            max(abs(a - b) for a, b in zip(got["logprobs"], record.logprobs, strict=True)) <= 1e-5
        )
    assert len(out["throughput"]) == 1 and out["throughput"][0] > 0  # one figure a run


def test_a_request_the_engine_rejects_fails_alone_naming_the_replica(address):
    async def go():
        async with Client(address) as client:
            too_long = await client.add_request(
                "x", replace(SAMPLING, num_tokens_to_generate=5000), request_id="mine-7"
            )
            fine = await client.add_request("y", SAMPLING)
            with pytest.raises(RequestFailed) as info:
                await too_long
            return info.value, await fine

    error, record = asyncio.run(asyncio.wait_for(go(), 60))
    assert error.code == "rejected"
    assert "replica 'r" in error.message and "max sequence length" in error.message
    assert "request 'mine-7'" in error.message  # the client's own id, not the engine-side one
    assert len(record["generated_tokens"]) == SAMPLING.num_tokens_to_generate
