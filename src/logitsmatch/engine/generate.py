"""``logitsmatch generate``: run prompts through the engine and write the output JSON.

One process when the layout has one rank; otherwise this module is what torchrun starts on each
rank (``python -m logitsmatch.engine.generate ...``). Requests go round-robin to the DP replicas;
rank 0 gathers every replica's records and writes the file.

With ``--inference-repeat-n N`` the same requests (fresh ones, the same seeds) run N times in
the same engine, as Megatron-LM's dynamic-inference test does: the file holds the last trial's
records and one throughput figure per trial. Every trial must give the first one's records (all
but timing fields) bit for bit: a difference fails the run as non-determinism, naming the
trial, the request, the field and the first differing position (``repeats.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, replace

import torch.distributed as dist

from logitsmatch import STARTED
from logitsmatch.engine import distributed
from logitsmatch.engine.build import build_engine, resolve_model
from logitsmatch.engine.engine import LLMEngine
from logitsmatch.engine.generate_args import (
    add_model_flags,
    add_request_flags,
    add_run_flags,
    engine_options,
    is_written,
    read_prompts,
    sampling_for,
)
from logitsmatch.engine.repeats import first_difference
from logitsmatch.engine.request import RequestError
from logitsmatch.engine.tokenizer import Tokenizer
from logitsmatch.record import OutputJSON, RequestRecord, output_json, write_output


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="logitsmatch generate", description=__doc__)
    add_model_flags(p)
    add_request_flags(p)
    add_run_flags(p)
    p.add_argument(
        "--deadline-s",
        type=float,
        default=600.0,
        help="whole-run deadline when launching several ranks",
    )
    p.add_argument("--run-dir", default=None, help="where rank logs go (multi-rank runs)")
    return p


def run_requests(
    engine: LLMEngine, args: argparse.Namespace, prompts: list[str | list[int]]
) -> tuple[list[RequestRecord], int]:
    """Run this replica's share of ``prompts``; returns (its records, generated tokens)."""
    ctx = engine.ctx
    tokenizer = engine.tokenizer
    out: list[RequestRecord] = []
    for index in range(ctx.dp_rank, len(prompts), ctx.dp_size):
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
    progress = (
        sys.stderr.isatty()
        and not os.environ.get("CI")
        and ctx.tp_rank == 0
        and ctx.is_last_stage
        and ctx.dp_rank == 0
    )
    generated = 0
    while engine.has_unfinished():
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
        first = first or records
        difference = first_difference(first, records) if trial else None
        if difference is not None:
            raise NonDeterminism(
                f"non-determinism: trial {trial + 1} of {args.inference_repeat_n} differs from "
                f"trial 1 (the same requests in the same engine): {difference}"
            )
    # why: Megatron writes the engine's step count at output time into every request's entry
    records = [r if r.error else replace(r, step_count=engine.steps) for r in records]
    return Trials(records, generated, elapsed, engine.lifetime_prefill_token_count)


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
    return output_json(kept, throughput=throughput, lifetime_prefill_token_count=prefill)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    options = engine_options(args)
    layout = options.layout
    prompts = read_prompts(args)
    sampling_for(args, 0)  # bad sampling flags fail here, before any model or rank starts
    spec = resolve_model(options)
    if layout.world_size > 1 and not distributed.in_torchrun():
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
