"""One pipeline stage of a GPT: (embedding) -> its layers -> (final norm + output layer).

A stage builds and loads only what it owns: the first stage the embedding, the last the final
norm and output layer, each its own slice of layers; TP ranks hold their vocab/head/ffn shards.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from logitsmatch.engine.attention import AttentionMetadata
from logitsmatch.engine.config import ModelConfig
from logitsmatch.engine.layers import Block, Norm, Rotary, frozen_weight, linear
from logitsmatch.engine.parallel_context import ParallelContext
from logitsmatch.engine.weights import WeightSource


class StageModel(nn.Module):
    def __init__(
        self,
        config: ModelConfig,
        ctx: ParallelContext,
        weights: WeightSource,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        batch_invariant: bool = False,
        fp8_layers: frozenset[int] = frozenset(),
    ) -> None:
        super().__init__()
        self.batch_invariant = batch_invariant
        self.config, self.ctx, self.dtype = config, ctx, dtype
        start, end = (
            ctx.layer_start,
            ctx.layer_end if ctx.layer_end is not None else config.num_layers,
        )
        self.layer_ids = list(range(start, end))
        self.vocab_start, self.vocab_end = ctx.shard(config.vocab_size)
        vocab_rows = (self.vocab_start, self.vocab_end)
        self.embed: nn.Parameter | None = None
        self.pos_embed: nn.Parameter | None = None
        if ctx.is_first_stage:
            self.embed = nn.Parameter(
                weights.get("model.embed_tokens.weight", rows=vocab_rows).to(dtype),
                requires_grad=False,
            )
            if config.positions == "learned":
                self.pos_embed = nn.Parameter(
                    weights.get("model.embed_positions.weight").to(dtype), requires_grad=False
                )
        self.rotary = (
            Rotary(config.head_dim, config.max_seq_len, config.rope_theta)
            if config.positions == "rope"
            else None
        )
        self.layers = nn.ModuleList(
            Block(config, ctx, weights, i, dtype, batch_invariant, i in fp8_layers)
            for i in self.layer_ids
        )
        self.final_norm: Norm | None = None
        self.lm_head: nn.Parameter | None = None
        if ctx.is_last_stage:
            self.final_norm = Norm(
                weights.get("model.norm.weight").to(dtype), config.norm_eps, config.norm
            )
            head = "model.embed_tokens.weight" if config.tie_embeddings else "lm_head.weight"
            self.lm_head = frozen_weight(
                weights.get(head, rows=vocab_rows), dtype, batch_invariant
            )  # [H, V_l]
        self.to(device)

    def kv_bytes_per_token(self) -> int:
        """K + V bytes one token takes in this stage's cache (its layers, its KV heads)."""
        if not len(self.layers):
            return 1
        heads = self.block(0).attn.num_kv_heads
        element = torch.empty((), dtype=self.dtype).element_size()
        return max(1, 2 * len(self.layers) * heads * self.config.head_dim * element)

    def block(self, index: int) -> Block:
        """Layer ``index`` of this stage, typed (nn.ModuleList's items are plain Modules)."""
        return cast(Block, self.layers[index])

    def embed_tokens(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """tokens: [T] -> [T, H]; vocab-parallel: ids outside this shard give 0, then all-reduce."""
        assert self.embed is not None
        if self.ctx.tp_size == 1:
            hidden = self.embed[tokens]
        else:
            local = tokens - self.vocab_start
            outside = (local < 0) | (local >= self.embed.shape[0])
            hidden = self.embed[local.masked_fill(outside, 0)]
            hidden = self.ctx.all_reduce(hidden.masked_fill(outside.unsqueeze(-1), 0.0))
        if self.pos_embed is not None:
            hidden = hidden + self.pos_embed[positions]
        return hidden

    def forward(
        self,
        hidden: torch.Tensor,
        meta: AttentionMetadata,
        kv_caches: list[torch.Tensor],
    ) -> torch.Tensor:
        """hidden: [T, H] (already embedded on the first stage) -> [T, H] after this stage."""
        rope = self.rotary.tables(meta.positions, hidden.dtype) if self.rotary else None
        for layer, kv_cache in zip(self.layers, kv_caches, strict=True):
            hidden = layer(hidden, rope, meta, kv_cache)
        if self.final_norm is not None:
            hidden = self.final_norm(hidden)
        return hidden

    def local_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: [R, H] (final-normed) -> fp32 logits of this rank's vocab shard [R, V_l]."""
        assert self.lm_head is not None
        return linear(hidden, self.lm_head, self.batch_invariant).float()
