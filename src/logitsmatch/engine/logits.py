"""Log-probabilities, argmax and top-n over a vocabulary sharded across TP ranks.

Never gathers the full [R, V] logits for these: each rank reduces its shard and only [R]-sized
(or [R, n]-sized) results cross ranks. ``local``: fp32 logits [R, V_l] of vocab ids
[vocab_start, vocab_start + V_l). With one rank the same formulas run, so tp1 == single process.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from logitsmatch.engine.parallel_context import ParallelContext


def log_normalizer(local: torch.Tensor, ctx: ParallelContext) -> torch.Tensor:
    """log(sum(exp(logits))) over the whole vocabulary: [R]."""
    peak = local.amax(dim=-1)  # values only: ~8x faster than max(dim), which also finds indices
    ctx.all_reduce(peak, op=dist.ReduceOp.MAX)
    # Summed in float64 so that splitting the vocabulary over TP ranks changes nothing visible.
    total = torch.exp(local - peak.unsqueeze(-1)).sum(dim=-1, dtype=torch.float64)
    ctx.all_reduce(total)
    return peak + torch.log(total).to(peak.dtype)


def token_logprobs(
    local: torch.Tensor,
    targets: torch.Tensor,
    vocab_start: int,
    ctx: ParallelContext,
    normalizer: torch.Tensor | None = None,
) -> torch.Tensor:
    """log p(targets[r]) for each row r: [R]."""
    if normalizer is None:
        normalizer = log_normalizer(local, ctx)
    index = targets - vocab_start
    mine = (index >= 0) & (index < local.shape[-1])
    picked = local.gather(-1, index.clamp(0, local.shape[-1] - 1).unsqueeze(-1)).squeeze(-1)
    picked = ctx.all_reduce(torch.where(mine, picked, torch.zeros_like(picked)))
    return picked - normalizer


def top_n(
    local: torch.Tensor, n: int, vocab_start: int, ctx: ParallelContext
) -> tuple[torch.Tensor, torch.Tensor]:
    """The n largest logits of each row and their global ids: ([R, n], [R, n]).

    Ties are ordered lowest id first; for n = 1 that is torch.argmax's pick on the full row.
    """
    k = min(n, local.shape[-1])
    # Greedy: max keeps the first (lowest) id of a tie, as torch.argmax and HF do; topk(1) may
    # return any of the tied ids (seen: the last), and is ~2x slower over a 49152-wide row.
    if k == 1:
        values, ids = local.max(dim=-1, keepdim=True)
        if ctx.tp_size == 1:
            return values, ids + vocab_start
    else:
        values, ids = local.topk(k, dim=-1)
    ids = ids + vocab_start
    if ctx.tp_size > 1:
        values = torch.cat(ctx.all_gather(values), dim=-1)
        ids = torch.cat(ctx.all_gather(ids.to(values.dtype)), dim=-1).long()
    # Sort by (value desc, id asc): a stable sort on ids, then a stable sort on -value.
    order = ids.argsort(dim=-1, stable=True)
    values, ids = values.gather(-1, order), ids.gather(-1, order)
    order = (-values).argsort(dim=-1, stable=True)[..., :n]
    return values.gather(-1, order), ids.gather(-1, order)


def full_logits(local: torch.Tensor, ctx: ParallelContext) -> torch.Tensor:
    """All TP shards side by side: [R, V]. Only for sampling rows (a handful per step)."""
    return torch.cat(ctx.all_gather(local), dim=-1)
