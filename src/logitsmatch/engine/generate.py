"""``logitsmatch generate``: run prompts through the engine and write the output JSON.

One process when the layout has one rank; otherwise this module is what engine/launch.py starts on
each rank (``python -m logitsmatch.engine.generate ...``). Requests go round-robin to the DP
replicas; rank 0 gathers every replica's records and writes the file.

With ``--inference-repeat-n N`` the same requests (fresh ones, the same seeds) run N times in
the same engine, as Megatron-LM's dynamic-inference test does: the file holds the last trial's
records and one throughput figure per trial, and ``mem-max-allocated-bytes``: the most any rank
allocated (``LLMEngine.memory_bytes``). Every trial must give the first one's records (all
but timing fields) bit for bit: a difference fails the run as non-determinism, naming the
trial, the request, the field and the first differing position (``repeats.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist

from logitsmatch import STARTED
from logitsmatch.engine import distributed
from logitsmatch.engine.arrivals import Arrivals
from logitsmatch.engine.build import build_engine, resolve_model
from logitsmatch.engine.engine import LLMEngine
from logitsmatch.engine.generate_args import (
    arrivals_of,
    engine_options,
    generate_parser,
    is_written,
    read_prompts,
    sampling_for,
)
from logitsmatch.engine.repeats import first_difference
from logitsmatch.engine.request import RequestError
from logitsmatch.engine.tokenizer import Tokenizer
from logitsmatch.record import OutputJSON, RequestRecord, output_json, write_output


def run_requests(
    engine: LLMEngine, args: argparse.Namespace, prompts: list[str | list[int]]
) -> tuple[list[RequestRecord], int]:
    """Run this replica's share of ``prompts``, arriving as ``arrivals_of(args)`` says;
    returns (its records, generated tokens)."""
    ctx = engine.ctx
    tokenizer = engine.tokenizer
    out: list[RequestRecord] = []
    arrivals = arrivals_of(args, len(prompts))
    times = arrivals.times(len(prompts))
    queue = deque(range(ctx.dp_rank, len(prompts), ctx.dp_size))

    def admit(index: int) -> None:
        prompt = prompts[index]
        tokens = tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if args.add_bos and tokenizer.bos_token_id is not None:
            tokens = [tokenizer.bos_token_id, *tokens]
        try:
            engine.add_request(tokens, sampling_for(args, index), request_id=str(index))
        except (RequestError, ValueError) as exc:
            out.append(
                RequestRecord(str(index), input_prompt=_text(tokenizer, prompt), error=str(exc))
            )

    progress = sys.stderr.isatty() and not os.environ.get("CI") and _reports(engine)
    generated = 0
    start = time.perf_counter()
    while queue or engine.has_unfinished():
        for _ in range(_arrived(arrivals, times, queue, engine, start)):
            admit(queue.popleft())
        if not engine.has_unfinished():
            continue
        for record in engine.step():
            text = _text(tokenizer, prompts[int(record.request_id)])
            out.append(replace(record, input_prompt=text))
            generated += len(record.generated_tokens or ())
        if progress:
            print(
                f"\rstep {engine.steps}: {len(out)} of {len(prompts)} requests done",
                end="",
                file=sys.stderr,
            )
    if progress:
        print(file=sys.stderr)
    return out, generated


def _arrived(
    arrivals: Arrivals, times: list[float], queue: deque[int], engine: LLMEngine, start: float
) -> int:
    """How many of ``queue``'s requests join before the next step. Timed arrivals are decided
    by the replica's first rank and broadcast, so all its ranks add the same requests at the
    same step (their clocks differ); an idle engine sleeps (at most 1 s a turn, so the other
    ranks' collective never times out) until the next arrival."""
    if arrivals.per_step is not None:
        return min(arrivals.per_step, len(queue))
    if not arrivals.timed:
        return len(queue)
    ctx = engine.ctx
    leader = not ctx.replica_ranks or dist.get_rank() == ctx.replica_ranks[0]
    count = 0
    if leader and queue:
        now = time.perf_counter() - start
        if not engine.has_unfinished() and times[queue[0]] > now:
            time.sleep(min(1.0, times[queue[0]] - now))
            now = time.perf_counter() - start
        while count < len(queue) and times[queue[count]] <= now:
            count += 1
    if len(ctx.replica_ranks) > 1:
        shared = torch.tensor([count], dtype=torch.long)
        dist.broadcast(shared, src=ctx.replica_ranks[0], group=ctx.replica_group)
        count = int(shared.item())
    return count


def _text(tokenizer: Tokenizer, prompt: str | list[int]) -> str:
    return prompt if isinstance(prompt, str) else tokenizer.decode(prompt)


class NonDeterminism(RuntimeError):
    """A repeated trial gave other records than the first."""


@dataclass(frozen=True)
class Trials:
    """What one replica's entry rank reports after all trials (rank 0 merges them)."""

    records: list[RequestRecord]  # the last trial's
    generated: list[int]  # generated tokens, one count per trial
    elapsed: list[float]  # wall seconds, one per trial
    prefill_tokens: int  # the engine's lifetime_prefill_token_count after the last trial
    memory_bytes: int  # the most any rank of the replica allocated (LLMEngine.memory_bytes)


def run_trials(
    engine: LLMEngine, args: argparse.Namespace, prompts: list[str | list[int]]
) -> Trials:
    """``args.inference_repeat_n`` trials of this replica's share of ``prompts``."""
    generated: list[int] = []
    elapsed: list[float] = []
    records: list[RequestRecord] = []
    first: list[RequestRecord] = []
    for trial in range(args.inference_repeat_n):
        engine.reset()
        if dist.is_initialized():
            dist.barrier()  # why: every replica's trial starts together, so the wall times add up
        start = time.perf_counter()
        records, count = run_requests(engine, args, prompts)
        elapsed.append(time.perf_counter() - start)
        generated.append(count)
        if args.inference_repeat_n > 1 and _reports(engine):
            # why: a long repeated run (the corpus' 3 trials of 128 requests) shows progress
            print(
                f"logitsmatch: trial {trial + 1} of {args.inference_repeat_n}: "
                f"{count} tokens in {elapsed[-1]:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        first = first or records
        difference = first_difference(first, records) if trial else None
        if difference is not None:
            raise NonDeterminism(
                f"non-determinism: trial {trial + 1} of {args.inference_repeat_n} differs from "
                f"trial 1 (the same requests in the same engine): {difference}"
            )
    # why: Megatron writes the engine's step count at output time into every request's entry
    records = [r if r.error else replace(r, step_count=engine.steps) for r in records]
    return Trials(
        records, generated, elapsed, engine.lifetime_prefill_token_count, _peak_memory(engine)
    )


def _reports(engine: LLMEngine) -> bool:
    """Whether this rank prints run-wide lines: the first replica's last stage, TP rank 0."""
    ctx = engine.ctx
    return ctx.tp_rank == 0 and ctx.is_last_stage and ctx.dp_rank == 0


def _peak_memory(engine: LLMEngine) -> int:
    """``engine.memory_bytes()``, the largest over all ranks (a collective: every rank calls)."""
    local = engine.memory_bytes()
    if not dist.is_initialized():
        return local
    peak = torch.tensor([local], dtype=torch.long)
    dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    return int(peak.item())


def gather(trials: Trials, contribute: bool) -> list[Trials]:
    """Every replica's Trials on rank 0 (elsewhere: []); only one rank per replica
    ``contribute``s, since all ranks of a replica hold the same records."""
    if not dist.is_initialized():
        return [trials]
    parts: list[Trials | None] = [None] * dist.get_world_size()
    dist.gather_object(trials if contribute else None, parts if dist.get_rank() == 0 else None)
    return [part for part in parts if part is not None]


def output_doc(parts: list[Trials], args: argparse.Namespace, count: int) -> OutputJSON:
    """The output JSON of the replicas' ``parts``: the requests --output-every-n-results
    keeps, one throughput per trial (all replicas' tokens / the slowest replica's time) and
    the prefill tokens of all replicas."""
    records = [r for part in parts for r in part.records]
    kept = [r for r in records if is_written(int(r.request_id), count, args.output_every_n_results)]
    throughput = []
    for trial in range(args.inference_repeat_n):
        tokens = sum(part.generated[trial] for part in parts)
        wall = max(part.elapsed[trial] for part in parts)
        throughput.append(tokens / wall if wall > 0 else 0.0)
    prefill = sum(part.prefill_tokens for part in parts)
    return output_json(
        kept,
        throughput=throughput,
        lifetime_prefill_token_count=prefill,
        mem_max_allocated_bytes=max(part.memory_bytes for part in parts),
    )


def main(argv: list[str] | None = None) -> int:
    args = generate_parser(__doc__).parse_args(argv)
    options = engine_options(args)
    layout = options.layout
    prompts = read_prompts(args)
    sampling_for(args, 0)  # bad sampling flags fail here, before any model or rank starts
    arrivals = arrivals_of(args, len(prompts))
    spec = resolve_model(options)
    if layout.world_size > 1 and not distributed.in_rank_job():
        from logitsmatch.engine.launch import launch_ranks

        return launch_ranks(
            "logitsmatch.engine.generate",
            list(argv or sys.argv[1:]),
            layout,
            args.deadline_s,
            args.run_dir,
        )
    engine = build_engine(options, spec)
    where = layout.describe(dist.get_rank()) if dist.is_initialized() else "single process"
    ready = time.perf_counter() - STARTED
    print(f"logitsmatch: {where} ready in {ready:.2f} s", file=sys.stderr, flush=True)
    if not dist.is_initialized() or dist.get_rank() == 0:
        print(f"logitsmatch: arrivals: {arrivals.describe(len(prompts))}", file=sys.stderr)
    try:
        trials = run_trials(engine, args, prompts)
    except NonDeterminism as exc:
        print(f"logitsmatch generate: {exc}", file=sys.stderr, flush=True)
        distributed.shutdown()
        return 1
    ctx = engine.ctx
    parts = gather(trials, not ctx.replica_ranks or dist.get_rank() == ctx.replica_ranks[0])
    failed = [r for part in parts for r in part.records if r.error is not None]
    if parts:
        write_output(args.output_path, output_doc(parts, args, len(prompts)))
        for r in failed:
            print(
                f"logitsmatch generate: request {r.request_id} failed: {r.error}", file=sys.stderr
            )
    distributed.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
