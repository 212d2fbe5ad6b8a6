"""The Megatron-style ZMQ driver: submit prompts in bursts, wait for all, build the output JSON.

Like Megatron-LM's coordinator-driven functional test, prompts go out ``incoming_requests_per_step``
at a time (yielding to the event loop between bursts) and, with ``stagger_lengths`` (the
default), request i of a burst generates ``num_tokens_to_generate + i`` tokens so requests
finish at different steps. The result is the output JSON of ``logitsmatch.record``: request ids
"0", "1", ... (prompt order) to the records the engines sent (every field the in-process engine
writes, top-n logprobs included), with ``latency`` measured by the client (seconds), plus
``throughput``: one figure for the run, all generated tokens / the driver's wall time (tok/s),
as the in-process path reports it, and ``lifetime_prefill_token_count``: the records'
``prefill_token_count`` summed over every request. With ``output_every_n`` only request i where
i % n == 0, and the last one, are written (Megatron's --output-every-n-results).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from logitsmatch.engine.generate_args import is_written
from logitsmatch.engine.request import SamplingParams
from logitsmatch.record import REQUEST_FIELD_NAMES, OutputJSON, RequestRecord, output_json
from logitsmatch.serving.client import Client
from logitsmatch.serving.security import CurveClientKeys


class DriverError(RuntimeError):
    """Some requests failed or missed the deadline; the message lists them."""


async def drive(
    address: str,
    prompts: Sequence[str | Sequence[int]],
    sampling: SamplingParams,
    incoming_requests_per_step: int,
    *,
    arrival_times: Sequence[float] | None = None,
    stagger_lengths: bool = True,
    deadline_s: float = 600.0,
    min_replicas: int = 1,
    curve: CurveClientKeys | None = None,
    shutdown: bool = False,
    output_every_n: int = 1,
    operator_secret: str | None = None,
) -> OutputJSON:
    """Run ``prompts`` through the coordinator at ``address``; returns the output-JSON dict.

    ``arrival_times``: request i is submitted that many seconds after the first (bursts are
    then one request each). Waits (within the deadline) for ``min_replicas`` replicas before
    submitting; with
    ``shutdown`` it then shuts the coordinator and its engines down. Raises DriverError naming
    every request that failed. ``output_every_n``: see ``to_output_json``. ``shutdown`` needs
    ``operator_secret``, the service's operator secret (``roles.py``).
    """
    k = incoming_requests_per_step
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"incoming_requests_per_step must be an int >= 1, got {k!r}")
    if arrival_times is not None:
        if len(arrival_times) != len(prompts):
            raise ValueError("drive: one arrival time per prompt")
        k = 1
    if not prompts:
        raise ValueError("drive: no prompts")
    start = time.monotonic()
    async with Client(
        address, name="driver", curve=curve, operator_secret=operator_secret
    ) as client:
        await client.wait_for_replicas(min_replicas, deadline_s)
        submitted = time.monotonic()
        futures = []
        for first in range(0, len(prompts), k):
            for i, prompt in enumerate(prompts[first : first + k]):
                # why: request i samples with seed + i, as in the in-process path, so a
                # sampled case gives the same numbers whichever path runs it.
                params = replace(sampling, seed=sampling.seed + first + i)
                if stagger_lengths:
                    params = replace(
                        params, num_tokens_to_generate=sampling.num_tokens_to_generate + i
                    )
                if arrival_times is not None:
                    due = submitted + arrival_times[first + i] - time.monotonic()
                    await asyncio.sleep(max(0.0, min(due, deadline_s)))
                left = max(0.001, deadline_s - (time.monotonic() - start))
                futures.append(await client.add_request(prompt, params, str(first + i), left))
            await asyncio.sleep(0)  # why: let replies be read while later bursts are queued
        results = await asyncio.gather(*futures, return_exceptions=True)
        elapsed = time.monotonic() - submitted
        if shutdown:
            await client.shutdown()
    failures = [f"{i}: {r}" for i, r in enumerate(results) if isinstance(r, BaseException)]
    if failures:
        raise DriverError(
            f"{len(failures)} of {len(prompts)} requests failed: "
            + "; ".join(failures[:5])
            + (" ..." if len(failures) > 5 else "")
        )
    records = [r for r in results if not isinstance(r, BaseException)]  # all of them, now
    return to_output_json(records, elapsed, output_every_n)


def to_output_json(
    records: Sequence[dict[str, Any]], elapsed_s: float, output_every_n: int = 1
) -> OutputJSON:
    """Output JSON from finished records in request order (ids "0", "1", ...), dropping what
    the client adds beside the record (``request_id``, ``replica``, ``engine_latency``).

    Only request i with i % ``output_every_n`` == 0, and the last, are written; throughput
    counts them all.
    """
    entries = [
        RequestRecord.from_json(str(i), {k: v for k, v in r.items() if k in REQUEST_FIELD_NAMES})
        for i, r in enumerate(records)
        if is_written(i, len(records), output_every_n)
    ]
    generated = sum(len(r["generated_tokens"]) for r in records)
    prefilled = [r.get("prefill_token_count") for r in records]
    counts = [n for n in prefilled if isinstance(n, int)]
    # why only when every record has it: an engine that does not report it must not look as
    # if it prefilled nothing
    lifetime = sum(counts) if len(counts) == len(prefilled) else None
    return output_json(
        entries,
        throughput=[generated / elapsed_s if elapsed_s > 0 else 0.0],
        lifetime_prefill_token_count=lifetime,
    )


def run_driver(
    address: str,
    prompts: Sequence[str | Sequence[int]],
    sampling: SamplingParams,
    incoming_requests_per_step: int,
    **kwargs: Any,
) -> OutputJSON:
    """Blocking wrapper of ``drive`` (same arguments)."""
    return asyncio.run(drive(address, prompts, sampling, incoming_requests_per_step, **kwargs))
