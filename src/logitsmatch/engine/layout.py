"""Parallel layout: world size, rank coordinates and the pipeline's layer split. Plain Python.

Rank order (Megatron's default): TP fastest, then DP, then PP:
``rank = pp_rank * (dp * tp) + dp_rank * tp + tp_rank``. So the TP ranks of a stage are
neighbours, and a replica (one dp_rank) is every tp × pp rank with that dp_rank.
"""

from __future__ import annotations

from dataclasses import dataclass

from logitsmatch.engine.config import ModelConfig


class LayoutError(ValueError):
    """A layout that cannot run; raised before any rank starts."""


@dataclass(frozen=True)
class Layout:
    tp: int = 1
    pp: int = 1
    dp: int = 1
    layer_split: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise LayoutError(f"{name} size must be an int >= 1, got {value!r}")
        if self.layer_split is not None and len(self.layer_split) != self.pp:
            raise LayoutError(
                f"--pipeline-layer-split has {len(self.layer_split)} entries, "
                f"pipeline size is {self.pp}"
            )

    @property
    def world_size(self) -> int:
        return self.tp * self.pp * self.dp

    def coords(self, rank: int) -> tuple[int, int, int]:
        """(tp_rank, pp_rank, dp_rank) of a global rank."""
        return rank % self.tp, rank // (self.tp * self.dp), (rank // self.tp) % self.dp

    def rank_of(self, tp_rank: int, pp_rank: int, dp_rank: int) -> int:
        return pp_rank * self.dp * self.tp + dp_rank * self.tp + tp_rank

    def describe(self, rank: int) -> str:
        tp, pp, dp = self.coords(rank)
        return f"rank {rank} (tp={tp} pp={pp} dp={dp})"

    def validate(self, config: ModelConfig, world_size: int | None = None) -> None:
        """Raise LayoutError naming the reason if this layout cannot run ``config``."""
        if world_size is not None and world_size != self.world_size:
            raise LayoutError(
                f"world size {world_size} != tp {self.tp} × pp {self.pp} × "
                f"dp {self.dp} = {self.world_size}"
            )
        if config.num_heads % self.tp:
            raise LayoutError(
                f"tensor parallel size {self.tp} does not divide the "
                f"{config.num_heads} attention heads"
            )
        kv = config.num_kv_heads
        if kv % self.tp and self.tp % kv:
            raise LayoutError(
                f"tensor parallel size {self.tp} and {kv} KV heads: one must "
                "divide the other (KV heads are split or replicated)"
            )
        if config.ffn_hidden_size % self.tp:
            raise LayoutError(
                f"tensor parallel size {self.tp} does not divide the FFN size "
                f"{config.ffn_hidden_size}"
            )
        if self.pp > config.num_layers:
            raise LayoutError(
                f"pipeline size {self.pp} is more stages than the model's "
                f"{config.num_layers} layers"
            )
        split = self.split(config.num_layers)
        if sum(split) != config.num_layers or min(split) < 1:
            raise LayoutError(
                f"layer split {list(split)} must give every stage >= 1 layer and "
                f"sum to {config.num_layers}"
            )

    def split(self, num_layers: int) -> tuple[int, ...]:
        """Layers per stage. Default: even; the remainder goes to the middle stages first,
        since the first and last stages also hold the embedding and the output layer."""
        if self.layer_split is not None:
            return self.layer_split
        base, extra = divmod(num_layers, self.pp)
        middle_first = [*range(1, self.pp - 1), 0, self.pp - 1]
        order = middle_first if self.pp > 2 else list(range(self.pp))
        counts = [base] * self.pp
        for stage in order[:extra]:
            counts[stage] += 1
        return tuple(counts)

    def layer_range(self, pp_rank: int, num_layers: int) -> tuple[int, int]:
        split = self.split(num_layers)
        start = sum(split[:pp_rank])
        return start, start + split[pp_rank]
