"""``logitsmatch generate``: run prompts through the engine and write the output JSON.

One process when the layout has one rank; otherwise this module is what torchrun starts on each
rank (``python -m logitsmatch.engine.generate ...``). Requests go round-robin to the DP replicas;
rank 0 gathers every replica's records and writes the file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

import torch.distributed as dist

from logitsmatch import STARTED
from logitsmatch.engine import distributed
from logitsmatch.engine.build import build_engine, resolve_model
from logitsmatch.engine.engine import LLMEngine
from logitsmatch.engine.generate_args import (
    add_model_flags,
    add_request_flags,
    engine_options,
    read_prompts,
    sampling_for,
)
from logitsmatch.engine.request import RequestError
from logitsmatch.engine.tokenizer import Tokenizer
from logitsmatch.record import RequestRecord, output_json, write_output


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="logitsmatch generate", description=__doc__)
    add_model_flags(p)
    add_request_flags(p)
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


def gather(
    records: list[RequestRecord], generated: int, contribute: bool
) -> tuple[list[RequestRecord], int]:
    """Merge every replica's records on rank 0; only one rank per replica ``contribute``s,
    since all ranks of a replica hold the same records."""
    if not dist.is_initialized():
        return records, generated
    mine = (records, generated) if contribute else ([], 0)
    parts: list[tuple[list[RequestRecord], int] | None] = [None] * dist.get_world_size()
    dist.gather_object(mine, parts if dist.get_rank() == 0 else None, dst=0)
    merged: list[RequestRecord] = []
    total = 0
    for part in parts if dist.get_rank() == 0 else []:
        assert part is not None
        merged.extend(part[0])
        total += part[1]
    return merged, total


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
    start = time.perf_counter()
    where = layout.describe(dist.get_rank()) if dist.is_initialized() else "single process"
    print(f"logitsmatch: {where} ready in {start - STARTED:.2f} s", file=sys.stderr, flush=True)
    records, generated = run_requests(engine, args, prompts)
    elapsed = time.perf_counter() - start
    ctx = engine.ctx
    entry = not ctx.replica_ranks or dist.get_rank() == ctx.replica_ranks[0]
    records, generated = gather(records, generated, entry)
    failed = [r for r in records if r.error is not None]
    if not dist.is_initialized() or dist.get_rank() == 0:
        throughput = [generated / elapsed if elapsed > 0 else 0.0]
        write_output(args.output_path, output_json(records, throughput=throughput))
        for r in failed:
            print(
                f"logitsmatch generate: request {r.request_id} failed: {r.error}", file=sys.stderr
            )
    distributed.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
