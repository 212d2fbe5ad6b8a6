"""Where this process sits in a TP × PP × DP job, and the collectives the model layers use.

A single process is ``ParallelContext()``: every collective is a no-op, so the same model code
runs alone or as one rank of a torch.distributed job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class ParallelContext:
    tp_rank: int = 0
    tp_size: int = 1
    pp_rank: int = 0
    pp_size: int = 1
    dp_rank: int = 0
    dp_size: int = 1
    layer_start: int = 0
    layer_end: int | None = None
    tp_group: Any = None
    replica_group: Any = None
    prev_stage_rank: int | None = None
    next_stage_rank: int | None = None
    last_stage_rank: int = 0
    replica_ranks: list[int] = field(default_factory=list)
    timeout: timedelta = timedelta(seconds=60)

    @property
    def is_first_stage(self) -> bool:
        return self.pp_rank == 0

    @property
    def is_last_stage(self) -> bool:
        return self.pp_rank == self.pp_size - 1

    @property
    def distributed(self) -> bool:
        return self.tp_size * self.pp_size * self.dp_size > 1

    def shard(self, size: int) -> tuple[int, int]:
        """This TP rank's [start, end) of a dimension of ``size`` split as evenly as possible."""
        base, extra = divmod(size, self.tp_size)
        start = self.tp_rank * base + min(self.tp_rank, extra)
        return start, start + base + (1 if self.tp_rank < extra else 0)

    def all_reduce(self, x: torch.Tensor, op: Any = None) -> torch.Tensor:
        if self.tp_size > 1:
            dist.all_reduce(x, op=op or dist.ReduceOp.SUM, group=self.tp_group)
        return x

    def all_gather(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Gather a tensor whose leading dims match on every TP rank (last dim may differ)."""
        if self.tp_size == 1:
            return [x]
        sizes = torch.tensor([x.shape[-1]], dtype=torch.long, device=x.device)
        all_sizes = [torch.empty_like(sizes) for _ in range(self.tp_size)]
        dist.all_gather(all_sizes, sizes, group=self.tp_group)
        width = int(max(s.item() for s in all_sizes))
        padded = torch.nn.functional.pad(x, (0, width - x.shape[-1]))
        out = [torch.empty_like(padded) for _ in range(self.tp_size)]
        dist.all_gather(out, padded.contiguous(), group=self.tp_group)
        return [o[..., : int(s.item())] for o, s in zip(out, all_sizes, strict=True)]
