"""``logitsmatch generate``: run prompts through the engine and write the output JSON.

One process when the layout has one rank; otherwise this module is what torchrun starts on each
rank (``python -m logitsmatch.engine.generate ...``). Requests go round-robin to the DP replicas;
rank 0 gathers every replica's records and writes the file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import torch
import torch.distributed as dist

from logitsmatch import STARTED
from logitsmatch.engine import distributed
from logitsmatch.engine.engine import LLMEngine
from logitsmatch.engine.generate_args import (
    add_model_flags,
    add_request_flags,
    engine_configs,
    read_prompts,
    sampling_for,
)
from logitsmatch.engine.layout import Layout
from logitsmatch.engine.loader import ModelSpec, build_stage, resolve
from logitsmatch.engine.request import RequestError
from logitsmatch.engine.tokenizer import Tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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


def layout_of(args: argparse.Namespace) -> Layout:
    split = None
    if args.pipeline_layer_split:
        split = tuple(int(x) for x in args.pipeline_layer_split.split(","))
    return Layout(
        args.tensor_model_parallel_size,
        args.pipeline_model_parallel_size,
        args.data_parallel_size,
        split,
    )


def dtype_of(args: argparse.Namespace) -> torch.dtype:
    return torch.bfloat16 if args.bf16 else DTYPES[args.dtype or "float32"]


def configure_threads(world_size: int) -> None:
    """Split the machine's cores between the local ranks so they don't oversubscribe."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, local)))


def build_engine(args: argparse.Namespace, spec: ModelSpec, layout: Layout) -> LLMEngine:
    device = distributed.pick_device(args.device)
    if args.deterministic_mode and device == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    configure_threads(layout.world_size)
    ctx = distributed.init(layout, spec.config.num_layers, device, args.collective_timeout_s)
    model = build_stage(spec, ctx, dtype_of(args), device, args.batch_invariant)
    cache, sched = engine_configs(args, model.kv_bytes_per_token())
    return LLMEngine(model, spec.tokenizer(), cache, sched)


def run_requests(
    engine: LLMEngine, args: argparse.Namespace, prompts: list[str | list[int]]
) -> tuple[dict[str, Any], int]:
    """Run this replica's share of ``prompts``; returns (records by id, generated tokens)."""
    ctx = engine.ctx
    tokenizer = engine.tokenizer
    out: dict[str, Any] = {}
    for index in range(ctx.dp_rank, len(prompts), ctx.dp_size):
        prompt = prompts[index]
        tokens = tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if args.add_bos and tokenizer.bos_token_id is not None:
            tokens = [tokenizer.bos_token_id, *tokens]
        try:
            engine.add_request(tokens, sampling_for(args, index), request_id=str(index))
        except (RequestError, ValueError) as exc:
            out[str(index)] = {"input_prompt": _text(tokenizer, prompt), "error": str(exc)}
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
            item = record.to_json()
            item["input_prompt"] = _text(tokenizer, prompts[int(record.request_id)])
            out[record.request_id] = item
            generated += len(record.generated_tokens)
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


def gather(records: dict[str, Any], generated: int, contribute: bool) -> tuple[dict[str, Any], int]:
    """Merge every replica's records on rank 0; only one rank per replica ``contribute``s,
    since all ranks of a replica hold the same records."""
    if not dist.is_initialized():
        return records, generated
    mine = (records, generated) if contribute else ({}, 0)
    parts: list[Any] = [None] * dist.get_world_size()
    dist.gather_object(mine, parts if dist.get_rank() == 0 else None, dst=0)
    merged: dict[str, Any] = {}
    total = 0
    for part in parts if dist.get_rank() == 0 else []:
        merged.update(part[0])
        total += part[1]
    return merged, total


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    layout = layout_of(args)
    prompts = read_prompts(args)
    sampling_for(args, 0)  # bad sampling flags fail here, before any model or rank starts
    spec = resolve(args.model, args.inference_max_seq_length, args.synthetic_seed)
    layout.validate(spec.config)
    if layout.world_size > 1 and not distributed.in_torchrun():
        from logitsmatch.engine.launch import launch_ranks

        return launch_ranks(
            "logitsmatch.engine.generate",
            list(argv or sys.argv[1:]),
            layout,
            args.deadline_s,
            args.run_dir,
        )
    engine = build_engine(args, spec, layout)
    start = time.perf_counter()
    where = layout.describe(dist.get_rank()) if dist.is_initialized() else "single process"
    print(f"logitsmatch: {where} ready in {start - STARTED:.2f} s", file=sys.stderr, flush=True)
    records, generated = run_requests(engine, args, prompts)
    elapsed = time.perf_counter() - start
    ctx = engine.ctx
    entry = not ctx.replica_ranks or dist.get_rank() == ctx.replica_ranks[0]
    records, generated = gather(records, generated, entry)
    failed: list[str] = []
    if not dist.is_initialized() or dist.get_rank() == 0:
        output: dict[str, Any] = {k: records[k] for k in sorted(records, key=int)}
        output["throughput"] = [generated / elapsed if elapsed > 0 else 0.0]
        args.output_path.parent.mkdir(parents=True, exist_ok=True)
        args.output_path.write_text(json.dumps(output, indent=1))
        failed = [k for k, v in output.items() if isinstance(v, dict) and "error" in v]
        for k in failed:
            print(
                f"logitsmatch generate: request {k} failed: {output[k]['error']}", file=sys.stderr
            )
    distributed.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
