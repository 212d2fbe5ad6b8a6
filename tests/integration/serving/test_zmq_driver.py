"""The Megatron-style driver against a live coordinator and two model-free replicas."""

from __future__ import annotations

import pytest

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.driver import DriverError, run_driver

PROMPTS = [f"prompt {i}" for i in range(10)]


@pytest.fixture
def address(threads):
    coordinator = threads.coordinator()
    threads.worker(coordinator.address, "r0")
    threads.worker(coordinator.address, "r1")
    return coordinator.address


def test_bursts_stagger_lengths_and_ids_follow_prompt_order(address):
    out = run_driver(
        address, PROMPTS, SamplingParams(num_tokens_to_generate=3), 4, min_replicas=2, deadline_s=30
    )
    assert list(out) == [str(i) for i in range(10)] + ["throughput"]
    assert [len(out[str(i)]["generated_tokens"]) for i in range(10)] == [3, 4, 5, 6] * 2 + [3, 4]
    assert [out[str(i)]["input_prompt"] for i in range(10)] == PROMPTS
    assert set(out["0"]) == {
        "input_prompt",
        "generated_text",
        "generated_tokens",
        "latency",
        "finish_reason",
    }


def test_stagger_off_keeps_every_length(address):
    out = run_driver(
        address,
        PROMPTS,
        SamplingParams(num_tokens_to_generate=3, return_log_probs=True),
        4,
        stagger_lengths=False,
        deadline_s=30,
    )
    assert {len(out[str(i)]["generated_tokens"]) for i in range(10)} == {3}
    assert "logprobs" in out["0"]


def test_failed_requests_raise_naming_them(threads):
    coordinator = threads.coordinator()  # no replica at all
    with pytest.raises(DriverError, match=r"2 of 2 requests failed: 0: .*no_replica"):
        run_driver(
            coordinator.address, ["a", "b"], SamplingParams(), 1, min_replicas=0, deadline_s=10
        )


def test_shutdown_after_the_run_ends_the_coordinator(threads):
    coordinator = threads.coordinator()
    worker = threads.worker(coordinator.address, "r0")
    run_driver(
        coordinator.address,
        ["a"],
        SamplingParams(num_tokens_to_generate=2),
        1,
        shutdown=True,
        deadline_s=30,
        operator_secret=threads.operator(coordinator.address),
    )
    threads.running[0][1].join(10)
    assert not threads.running[0][1].is_alive()
    assert coordinator.sock.closed
    threads.running[1][1].join(10)
    assert worker["exit"] == "shutdown"
