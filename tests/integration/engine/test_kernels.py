"""The engine's hand-written kernels against the textbook formulas they replace, bit for bit.

Each kernel exists for speed (fewer ops per layer); these tests pin that it computes exactly what
HF's formulation computes, so the goldens cannot move when one of them is touched.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from logitsmatch.engine.layers import Norm, Rotary, apply_rope_, interleave_heads
from logitsmatch.engine.logits import top_n
from logitsmatch.engine.parallel_context import ParallelContext

D = 64


@pytest.mark.parametrize("rows", [1, 2, 7, 32, 300])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0])
def test_rmsnorm_is_bit_identical_to_torch_rms_norm(rows: int, scale: float) -> None:
    gen = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, 576, generator=gen) * scale
    weight = torch.rand(576, generator=gen) + 0.5
    got = Norm(weight, 1e-5, "rmsnorm")(x)
    assert torch.equal(got, F.rms_norm(x, (576,), weight, 1e-5))


def hf_rope(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """HF Llama's rotary: x [T, heads, D] * cos + rotate_half(x) * sin, halves not interleaved."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    freqs = torch.outer(positions.float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().unsqueeze(1).to(x.dtype), emb.sin().unsqueeze(1).to(x.dtype)
    rotated = torch.cat((-x[..., D // 2 :], x[..., : D // 2]), dim=-1)
    return x * cos + rotated * sin


def deinterleave(x: torch.Tensor) -> torch.Tensor:
    """[..., D] with pairs (2j, 2j+1) -> HF's halves (j, j + D/2)."""
    return torch.cat((x[..., 0::2], x[..., 1::2]), dim=-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_interleaved_complex_rope_equals_hf_rotate_half(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    heads, hidden = 4, 96
    weight = torch.randn(heads * D, hidden, generator=gen)
    x = torch.randn(5, hidden, generator=gen)
    positions = torch.tensor([0, 1, 17, 900, 2047])
    hf_heads = (x @ weight.T).view(5, heads, D)
    ours = (x @ interleave_heads(weight, D).T).view(5, heads, D)
    # The reordered projection gives the same numbers, only in other slots.
    assert torch.equal(deinterleave(ours), hf_heads)
    ours = ours.to(dtype)
    apply_rope_(ours, Rotary(D, 2048, 10000.0).tables(positions))
    expected = hf_rope(hf_heads.to(dtype), positions, 10000.0)
    assert torch.equal(deinterleave(ours), expected)


def test_interleaving_leaves_attention_scores_unchanged() -> None:
    """Same permutation of Q and K dims: each score sums the same products, in another order
    (so fp32 scores may differ in the last bit; in float64 they agree to rounding)."""
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(3, D, generator=gen, dtype=torch.float64)
    k = torch.randn(5, D, generator=gen, dtype=torch.float64)
    order = interleave_heads(torch.arange(D).view(D, 1), D).view(-1)
    assert sorted(order.tolist()) == list(range(D)) and order.tolist() != list(range(D))
    torch.testing.assert_close(q[:, order] @ k[:, order].T, q @ k.T, rtol=1e-13, atol=1e-13)


def test_greedy_top_1_takes_the_lowest_id_of_a_tie() -> None:
    logits = torch.zeros(3, 10)
    logits[0, 3] = logits[0, 7] = 1.0  # a tie between ids 3 and 7
    logits[1] = 2.0  # every id tied
    logits[2, 9] = 0.5
    values, ids = top_n(logits, 1, vocab_start=100, ctx=ParallelContext())
    assert ids.view(-1).tolist() == [103, 100, 109]
    assert values.view(-1).tolist() == [1.0, 2.0, 0.5]
    assert ids.view(-1).tolist() == (logits.argmax(-1) + 100).tolist()


def test_top_n_orders_by_value_then_id() -> None:
    logits = torch.tensor([[0.5, 2.0, 1.0, 2.0, -1.0]])
    values, ids = top_n(logits, 3, vocab_start=0, ctx=ParallelContext())
    assert values.tolist() == [[2.0, 2.0, 1.0]]
    assert ids.tolist() == [[1, 3, 2]]
