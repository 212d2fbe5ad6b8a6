"""Paged attention over a flat KV cache, for a step that mixes prefill chunks and decodes.

Shapes: T = tokens in the step (all requests, concatenated), B = requests, Q = longest chunk,
L = longest context (cached + new), S = cache slots (num_blocks * block_size), D = head_dim.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class StepSpec:
    """One request's share of a step: positions [start, end) and the cache slot of each context
    position [0, end)."""

    start: int
    end: int
    slots: list[int]


@dataclass
class AttentionMetadata:
    """Built once per step, shared by every layer."""

    positions: torch.Tensor  # [T] position of each new token
    slot_mapping: torch.Tensor  # [T] cache slot each new token's K/V is written to
    gather_index: torch.Tensor  # [B, L] cache slot of each context position (pad: slot 0)
    mask: torch.Tensor | None  # [B, 1, Q, L] True where query may attend key; None: all keys
    query_index: torch.Tensor | None  # [T] row of each token in the padded [B * Q]; None if Q == 1
    num_seqs: int
    max_query: int

    @classmethod
    def build(cls, specs: list[StepSpec], device: torch.device) -> AttentionMetadata:
        batch = len(specs)
        max_query = max(s.end - s.start for s in specs)
        max_ctx = max(s.end for s in specs)
        positions: list[int] = []
        slot_mapping: list[int] = []
        gather = torch.zeros(batch, max_ctx, dtype=torch.long)
        query_rows: list[int] = []
        q_pos = torch.full((batch, max_query), -1, dtype=torch.long)
        ctx_len = torch.empty(batch, 1, dtype=torch.long)
        for b, s in enumerate(specs):
            n = s.end - s.start
            positions.extend(range(s.start, s.end))
            slot_mapping.extend(s.slots[s.start : s.end])
            gather[b, : s.end] = torch.tensor(s.slots[: s.end], dtype=torch.long)
            query_rows.extend(range(b * max_query, b * max_query + n))
            q_pos[b, :n] = torch.arange(s.start, s.end)
            ctx_len[b, 0] = s.end
        keys = torch.arange(max_ctx)
        # key j visible to a query at position p iff j <= p (causal; also bounds j < end).
        mask = keys.view(1, 1, -1) <= q_pos.unsqueeze(-1)  # [B, Q, L]
        # Padded query rows see key 0 only, so softmax has no empty row (their output is dropped).
        mask[..., 0] |= q_pos < 0
        return cls(
            positions=torch.tensor(positions, dtype=torch.long, device=device),
            slot_mapping=torch.tensor(slot_mapping, dtype=torch.long, device=device),
            gather_index=gather.to(device),
            # Decodes over contexts of one length see every key: no mask, SDPA's faster path.
            mask=None
            if max_query == 1 and all(s.end == max_ctx for s in specs)
            else mask.unsqueeze(1).to(device),
            query_index=None if max_query == 1 else torch.tensor(query_rows, device=device),
            num_seqs=batch,
            max_query=max_query,
        )


def paged_attention(
    q: torch.Tensor,
    kv: torch.Tensor,
    kv_cache: torch.Tensor,
    meta: AttentionMetadata,
    batch_invariant: bool = False,
) -> torch.Tensor:
    """q: [T, Hq, D], kv: [T, 2 * Hkv, D] (K heads, then V heads), kv_cache: [S, 2 * Hkv, D]
    -> [T, Hq * D].

    Writes the new K/V into the cache, then attends over each request's whole context. K and V
    share one cache row per slot so that each step writes and gathers once per layer, not twice.
    SDPA's sums over keys depend on the padded shapes (B, Q, L) of the step; in batch-invariant
    mode it runs in float64 and rounds once, like ``layers.linear``.
    """
    _, num_heads, head_dim = q.shape
    num_kv = kv.shape[1] // 2
    kv_cache.index_copy_(0, meta.slot_mapping, kv)
    # index_select on a flat index is ~3x faster than advanced indexing with a 2-D index.
    b, ctx_len = meta.gather_index.shape
    context = kv_cache.index_select(0, meta.gather_index.view(-1))  # [B * L, 2 * Hkv, D]
    context = context.view(b, ctx_len, 2 * num_kv, head_dim).transpose(1, 2)  # [B, 2Hkv, L, D]
    qmax = meta.max_query
    if meta.query_index is None:
        queries = q.view(b, 1, num_heads, head_dim)
    else:
        queries = q.new_zeros(b * qmax, num_heads, head_dim)
        queries[meta.query_index] = q
        queries = queries.view(b, qmax, num_heads, head_dim)
    compute = torch.float64 if batch_invariant else q.dtype
    out = F.scaled_dot_product_attention(
        queries.transpose(1, 2).to(compute),
        context[:, :num_kv].to(compute),
        context[:, num_kv:].to(compute),
        attn_mask=meta.mask,
        enable_gqa=num_heads != num_kv,
    ).to(q.dtype)  # [B, Hq, Q, D]
    out = out.transpose(1, 2).reshape(b * qmax, num_heads * head_dim)
    if meta.query_index is not None:
        out = out[meta.query_index]
    return out
