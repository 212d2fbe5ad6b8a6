"""The Megatron-style ZMQ driver: submit prompts in bursts, wait for all, build the output JSON.

Like Megatron-LM's coordinator-driven functional test, prompts go out ``incoming_requests_per_step``
at a time (yielding to the event loop between bursts) and, with ``stagger_lengths`` (the
default), request i of a burst generates ``num_tokens_to_generate + i`` tokens so requests
finish at different steps. The result maps request ids "0", "1", ... (prompt order) to
``input_prompt, generated_text, generated_tokens, logprobs (if asked), latency`` (client-side,
seconds) and ``finish_reason`` (as the in-process engine writes it), plus top-level
``throughput``: each request's generated tokens / latency (tok/s), in prompt order, as
Megatron's driver reports it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.client import Client
from logitsmatch.serving.security import CurveClientKeys

OUTPUT_FIELDS = (
    "input_prompt",
    "generated_text",
    "generated_tokens",
    "logprobs",
    "latency",
    "finish_reason",
)


class DriverError(RuntimeError):
    """Some requests failed or missed the deadline; the message lists them."""


async def drive(
    address: str,
    prompts: Sequence[str | Sequence[int]],
    sampling: SamplingParams,
    incoming_requests_per_step: int,
    *,
    stagger_lengths: bool = True,
    deadline_s: float = 600.0,
    min_replicas: int = 1,
    curve: CurveClientKeys | None = None,
    shutdown: bool = False,
) -> dict[str, Any]:
    """Run ``prompts`` through the coordinator at ``address``; returns the output-JSON dict.

    Waits (within the deadline) for ``min_replicas`` replicas before submitting; with
    ``shutdown`` it then shuts the coordinator and its engines down. Raises DriverError naming
    every request that failed.
    """
    k = incoming_requests_per_step
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"incoming_requests_per_step must be an int >= 1, got {k!r}")
    if not prompts:
        raise ValueError("drive: no prompts")
    start = time.monotonic()
    async with Client(address, name="driver", curve=curve) as client:
        await client.wait_for_replicas(min_replicas, deadline_s)
        futures = []
        for first in range(0, len(prompts), k):
            for i, prompt in enumerate(prompts[first : first + k]):
                params = sampling
                if stagger_lengths:
                    params = replace(
                        sampling, num_tokens_to_generate=sampling.num_tokens_to_generate + i
                    )
                left = max(0.001, deadline_s - (time.monotonic() - start))
                futures.append(await client.add_request(prompt, params, str(first + i), left))
            await asyncio.sleep(0)  # why: let replies be read while later bursts are queued
        results = await asyncio.gather(*futures, return_exceptions=True)
        if shutdown:
            await client.shutdown()
    failures = [f"{i}: {r}" for i, r in enumerate(results) if isinstance(r, BaseException)]
    if failures:
        raise DriverError(
            f"{len(failures)} of {len(prompts)} requests failed: "
            + "; ".join(failures[:5])
            + (" ..." if len(failures) > 5 else "")
        )
    return to_output_json(results)


def to_output_json(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Output-JSON dict from finished records in request order (ids "0", "1", ...)."""
    out: dict[str, Any] = {}
    throughput = []
    for i, record in enumerate(records):
        out[str(i)] = {key: record[key] for key in OUTPUT_FIELDS if key in record}
        latency = record["latency"]
        throughput.append(len(record["generated_tokens"]) / latency if latency > 0 else 0.0)
    out["throughput"] = throughput
    return out


def run_driver(
    address: str,
    prompts: Sequence[str | Sequence[int]],
    sampling: SamplingParams,
    incoming_requests_per_step: int,
    **kwargs: Any,
) -> dict[str, Any]:
    """Blocking wrapper of ``drive`` (same arguments)."""
    return asyncio.run(drive(address, prompts, sampling, incoming_requests_per_step, **kwargs))
