"""Transformer layers, tensor-parallel aware (Megatron style).

Column-parallel weights are split by output rows across TP ranks, row-parallel ones by input
columns followed by an all-reduce. With tp_size 1 every collective is a no-op.
Shapes: T tokens, H hidden, D head_dim, F ffn hidden; ``_l`` = this rank's share.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from logitsmatch.engine.attention import AttentionMetadata, paged_attention
from logitsmatch.engine.config import ModelConfig
from logitsmatch.engine.fp8 import fp8_mm, quantize
from logitsmatch.engine.parallel_context import ParallelContext
from logitsmatch.engine.weights import WeightSource


def frozen_weight(weight: torch.Tensor, dtype: torch.dtype, batch_invariant: bool) -> nn.Parameter:
    """A checkpoint weight [N, K] (out, in) stored as ``linear`` wants it: transposed, [K, N],
    and in float64 when ``batch_invariant`` (see ``linear``), else in ``dtype``."""
    stored = torch.float64 if batch_invariant else dtype
    return nn.Parameter(weight.t().contiguous().to(stored), requires_grad=False)


def block_weight(
    weight: torch.Tensor, dtype: torch.dtype, batch_invariant: bool, fp8: bool
) -> tuple[nn.Parameter, torch.Tensor | None]:
    """A transformer block's linear weight [N, K] as ``project`` wants it: (``frozen_weight``,
    None), or with ``fp8`` (e4m3 values [K, N] in float32, their scale); see ``fp8.py``."""
    if not fp8:
        return frozen_weight(weight, dtype, batch_invariant), None
    values, scale = quantize(weight.t().contiguous())
    return nn.Parameter(values, requires_grad=False), scale


def project(
    x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor | None, batch_invariant: bool
) -> torch.Tensor:
    """``linear``, or the emulated fp8 GEMM when the weight has an fp8 ``scale``."""
    if scale is not None:
        return fp8_mm(x, weight, scale)
    return linear(x, weight, batch_invariant)


def linear(x: torch.Tensor, weight: torch.Tensor, batch_invariant: bool) -> torch.Tensor:
    """x: [T, K] @ weight [K, N] -> [T, N] in x's dtype.

    Why [K, N] and torch.mm rather than F.linear on [N, K]: over SmolLM2's matrices MKL ran it
    11-30% faster at T=1 and T=32 (benchmarks/bench_matmul.py: qkv, o and down 1.2-1.8x;
    gate+up and the output layer at T=32 0.8-0.95x); the sum over K is the same dot product.
    Why two paths: BLAS picks its GEMM kernel by the row count T (gemv for 1 row, small-M and
    blocked kernels above) and each kernel sums over K in its own order, so a request's
    numbers shift by a few ulps with the batch around it (up to 1.9e-4 in SmolLM2's logprobs,
    at a position where fp32 itself is 4-6e-4 off a float64 forward, in HF as in this engine).
    ``batch_invariant``: ``weight`` is float64, the product is accumulated in float64 and
    rounded once to x's dtype, so the order no longer shows (a flip needs a float64 sum within
    ~1e-16 of a float32 rounding boundary). Costs ~2x the matmul time and weight memory.
    """
    if not batch_invariant:
        return torch.mm(x, weight)
    return torch.mm(x.to(weight.dtype), weight).to(x.dtype)


def row_parallel(
    x: torch.Tensor,
    weight: torch.Tensor,
    ctx: ParallelContext,
    batch_invariant: bool,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """Row-parallel linear + all-reduce; in batch-invariant mode the partial sums cross ranks in
    float64 and are rounded once, so tp=N matches tp=1 as closely as batch sizes do. With an
    fp8 ``scale``, each rank's fp8 GEMM, then the sum in x's dtype (as Megatron-LM's)."""
    if scale is not None:
        return ctx.all_reduce(fp8_mm(x, weight, scale))
    if not batch_invariant:
        return ctx.all_reduce(torch.mm(x, weight))
    return ctx.all_reduce(torch.mm(x.to(weight.dtype), weight)).to(x.dtype)


class Norm(nn.Module):
    """RMSNorm (Llama) or LayerNorm without bias, in fp32 like HF, cast back to the input dtype."""

    def __init__(self, weight: torch.Tensor, eps: float, kind: str) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.eps = eps
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "rmsnorm" and x.dtype == torch.float32:
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)  # = HF's, bit for bit
        dtype = x.dtype
        h = x.float()
        if self.kind == "layernorm":
            h = F.layer_norm(h, h.shape[-1:], eps=self.eps)
        else:
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


class Rotary(nn.Module):
    """Rotary position embedding, HF's rotate_half convention; cos/sin tables in fp32."""

    # the buffers registered in __init__ (nn.Module's __getattr__ types them Tensor | Module)
    cos: torch.Tensor
    sin: torch.Tensor

    def __init__(self, head_dim: int, max_len: int, theta: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (
            theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim)
        )
        freqs = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)  # [P, D/2]
        emb = torch.cat((freqs, freqs), dim=-1)  # [P, D]
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def tables(self, positions: torch.Tensor, dtype: torch.dtype) -> RopeTables:
        """cos/sin for a step's positions [T], shaped [T, 1, D]: looked up once per step."""
        return (
            self.cos[positions].unsqueeze(1).to(dtype),
            self.sin[positions].unsqueeze(1).to(dtype),
        )


RopeTables = tuple[torch.Tensor, torch.Tensor]


def apply_rope(x: torch.Tensor, rope: RopeTables) -> torch.Tensor:
    """x: [T, heads, D] -> x * cos + rotate_half(x) * sin."""
    cos, sin = rope
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def kv_heads_for_rank(c: ModelConfig, ctx: ParallelContext) -> tuple[int, int]:
    """[start, end) of the KV heads this TP rank holds; replicated when TP > KV heads."""
    if ctx.tp_size <= c.num_kv_heads:
        per = c.num_kv_heads // ctx.tp_size
        return ctx.tp_rank * per, (ctx.tp_rank + 1) * per
    head = ctx.tp_rank * c.num_kv_heads // ctx.tp_size
    return head, head + 1


class Attention(nn.Module):
    def __init__(
        self,
        c: ModelConfig,
        ctx: ParallelContext,
        w: WeightSource,
        prefix: str,
        dtype: torch.dtype,
        batch_invariant: bool = False,
        fp8: bool = False,
    ) -> None:
        super().__init__()
        self.batch_invariant = batch_invariant
        d = c.head_dim
        q_per = c.num_heads // ctx.tp_size
        q0 = ctx.tp_rank * q_per
        kv0, kv1 = kv_heads_for_rank(c, ctx)
        self.num_heads, self.num_kv_heads, self.head_dim = q_per, kv1 - kv0, d
        # One fused matmul instead of three.
        qkv = torch.cat(
            [
                w.get(prefix + "q_proj.weight", rows=(q0 * d, (q0 + q_per) * d)),
                w.get(prefix + "k_proj.weight", rows=(kv0 * d, kv1 * d)),
                w.get(prefix + "v_proj.weight", rows=(kv0 * d, kv1 * d)),
            ]
        )
        # qkv: [H, (Hq_l + 2 Hkv_l) * D], o: [Hq_l * D, H]
        self.qkv, self.qkv_scale = block_weight(qkv, dtype, batch_invariant, fp8)
        o = w.get(prefix + "o_proj.weight", cols=(q0 * d, (q0 + q_per) * d))
        self.o, self.o_scale = block_weight(o, dtype, batch_invariant, fp8)
        self.ctx = ctx

    def forward(
        self,
        x: torch.Tensor,
        rope: RopeTables | None,
        meta: AttentionMetadata,
        kv_cache: torch.Tensor,
    ) -> torch.Tensor:
        t = x.shape[0]
        qkv = project(x, self.qkv, self.qkv_scale, self.batch_invariant)
        heads = qkv.view(t, self.num_heads + 2 * self.num_kv_heads, self.head_dim)
        if rope is not None:  # Q and K heads are adjacent: rotate them in one go, in place.
            qk = heads[:, : self.num_heads + self.num_kv_heads]
            qk.copy_(apply_rope(qk, rope))
        q, kv = heads[:, : self.num_heads], heads[:, self.num_heads :]
        out = paged_attention(q, kv, kv_cache, meta, self.batch_invariant)
        return row_parallel(out, self.o, self.ctx, self.batch_invariant, self.o_scale)


class MLP(nn.Module):
    """SwiGLU (gate/up/down) or GELU (up/down) MLP; up/gate column-parallel, down row-parallel."""

    def __init__(
        self,
        c: ModelConfig,
        ctx: ParallelContext,
        w: WeightSource,
        prefix: str,
        dtype: torch.dtype,
        batch_invariant: bool = False,
        fp8: bool = False,
    ) -> None:
        super().__init__()
        self.batch_invariant = batch_invariant
        f0, f1 = ctx.shard(c.ffn_hidden_size)
        self.swiglu = c.activation == "swiglu"
        names = ["gate_proj", "up_proj"] if self.swiglu else ["up_proj"]
        up = torch.cat([w.get(f"{prefix}{n}.weight", rows=(f0, f1)) for n in names])
        # up: [H, (2)F_l], down: [F_l, H]
        self.up, self.up_scale = block_weight(up, dtype, batch_invariant, fp8)
        down = w.get(prefix + "down_proj.weight", cols=(f0, f1))
        self.down, self.down_scale = block_weight(down, dtype, batch_invariant, fp8)
        self.ctx = ctx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = project(x, self.up, self.up_scale, self.batch_invariant)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            # why contiguous: on a strided view, an inner run shorter than two SIMD vectors
            # (tp8 of the tiny model: 16 floats a row, AVX-512) takes the scalar loop, whose exp
            # differs from the vector one by an ulp, so tp8 drifted from tp1 (9.5e-7 in a
            # logprob). Contiguous, every element takes the vector path at any width or batch.
            h = F.silu(gate.contiguous(), inplace=True).mul_(up)
        else:
            h = F.gelu(h, approximate="tanh")
        return row_parallel(h, self.down, self.ctx, self.batch_invariant, self.down_scale)


class Block(nn.Module):
    def __init__(
        self,
        c: ModelConfig,
        ctx: ParallelContext,
        w: WeightSource,
        layer: int,
        dtype: torch.dtype,
        batch_invariant: bool = False,
        fp8: bool = False,
    ) -> None:
        super().__init__()
        p = f"model.layers.{layer}."
        self.attn_norm = Norm(w.get(p + "input_layernorm.weight").to(dtype), c.norm_eps, c.norm)
        self.attn = Attention(c, ctx, w, p + "self_attn.", dtype, batch_invariant, fp8)
        self.mlp_norm = Norm(
            w.get(p + "post_attention_layernorm.weight").to(dtype), c.norm_eps, c.norm
        )
        self.mlp = MLP(c, ctx, w, p + "mlp.", dtype, batch_invariant, fp8)

    def forward(
        self,
        x: torch.Tensor,
        rope: RopeTables | None,
        meta: AttentionMetadata,
        kv_cache: torch.Tensor,
    ) -> torch.Tensor:
        # why cast: nn.Module.__call__ returns Any; Attention and MLP.forward return Tensor
        x = x + cast(torch.Tensor, self.attn(self.attn_norm(x), rope, meta, kv_cache))
        return x + cast(torch.Tensor, self.mlp(self.mlp_norm(x)))
