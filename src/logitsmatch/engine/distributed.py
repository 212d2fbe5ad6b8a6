"""Join the multi-rank job (engine/launch.py's, or a user's torchrun) and build this rank's
ParallelContext."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import torch
import torch.distributed as dist

from logitsmatch.engine.launch import RENDEZVOUS_ENV, RENDEZVOUS_TIMEOUT_ENV
from logitsmatch.engine.layout import Layout
from logitsmatch.engine.parallel_context import ParallelContext


def pick_device(requested: str | None) -> str:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: CUDA is not available on this machine")
    return requested or ("cuda" if torch.cuda.is_available() else "cpu")


def in_rank_job() -> bool:
    """Whether this process is one rank of a job (ours or torchrun's: both set these)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def rendezvous(path: str, rank: int, world: int, timeout_s: float) -> dist.FileStore:
    """Meet the other ranks in the FileStore at ``path``; raise, naming the ranks that never
    came, when they are not all there within ``timeout_s`` (a rank stuck before it could
    join would otherwise hold the job until the case's own deadline)."""
    store = dist.FileStore(path, world)
    store.set(f"arrived/{rank}", "1")
    waiting = [r for r in range(world)]
    end = time.monotonic() + timeout_s
    while waiting:
        waiting = [r for r in waiting if not store.check([f"arrived/{r}"])]
        if waiting and time.monotonic() >= end:
            raise RuntimeError(
                f"rendezvous failed: rank(s) {waiting} of {world} did not arrive within "
                f"{timeout_s:.0f} s (rank {rank}; store {path})"
            )
        time.sleep(0.02)
    return store


def init(layout: Layout, num_layers: int, device: str, timeout_s: float) -> ParallelContext:
    """Single process when ``layout.world_size == 1`` and not one rank of a job; else join it.

    Backend: NCCL on CUDA (one GPU per local rank), gloo on CPU.
    """
    timeout = timedelta(seconds=timeout_s)
    if layout.world_size == 1 and not in_rank_job():
        return ParallelContext(layer_start=0, layer_end=num_layers, timeout=timeout)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if world != layout.world_size:
        raise RuntimeError(f"the launcher started {world} ranks, layout needs {layout.world_size}")
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    backend = "nccl" if device == "cuda" else "gloo"
    if RENDEZVOUS_ENV in os.environ:
        store = rendezvous(
            os.environ[RENDEZVOUS_ENV], rank, world, float(os.environ[RENDEZVOUS_TIMEOUT_ENV])
        )
        dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)
    else:  # a user's torchrun: its env:// rendezvous
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
    tp_rank, pp_rank, dp_rank = layout.coords(rank)
    tp_group = replica_group = None
    # new_group is collective: every rank creates every group, in the same order.
    for pp in range(layout.pp):
        for dp in range(layout.dp):
            ranks = [layout.rank_of(t, pp, dp) for t in range(layout.tp)]
            group = dist.new_group(ranks, timeout=timeout)
            if rank in ranks:
                tp_group = group
    replica_ranks: list[int] = []
    for dp in range(layout.dp):
        ranks = sorted(layout.rank_of(t, p, dp) for p in range(layout.pp) for t in range(layout.tp))
        group = dist.new_group(ranks, timeout=timeout)
        if rank in ranks:
            replica_group, replica_ranks = group, ranks
    start, end = layout.layer_range(pp_rank, num_layers)
    return ParallelContext(
        tp_rank=tp_rank,
        tp_size=layout.tp,
        pp_rank=pp_rank,
        pp_size=layout.pp,
        dp_rank=dp_rank,
        dp_size=layout.dp,
        layer_start=start,
        layer_end=end,
        tp_group=tp_group,
        replica_group=replica_group,
        prev_stage_rank=layout.rank_of(tp_rank, pp_rank - 1, dp_rank) if pp_rank > 0 else None,
        next_stage_rank=(
            layout.rank_of(tp_rank, pp_rank + 1, dp_rank) if pp_rank < layout.pp - 1 else None
        ),
        last_stage_rank=layout.rank_of(0, layout.pp - 1, dp_rank),
        replica_ranks=replica_ranks,
        timeout=timeout,
    )


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
