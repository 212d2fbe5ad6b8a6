"""Emulated fp8 GEMMs (engine/fp8.py): e4m3 values, one scale per tensor, float32 products."""

import pytest
import torch

from logitsmatch.engine.fp8 import E4M3_MAX, fp8_mm, quantize
from logitsmatch.engine.options import EngineOptions


def test_quantize_maps_the_amax_to_448_and_rounds_to_e4m3():
    t = torch.tensor([[0.5, -2.0], [0.013, 1.0]])
    values, scale = quantize(t)
    assert scale.item() == pytest.approx(E4M3_MAX / 2.0)
    assert values.abs().max().item() == E4M3_MAX
    # Every value is an e4m3 number: a round trip through float8 changes none.
    assert torch.equal(values, values.to(torch.float8_e4m3fn).float())
    # e4m3 keeps 3 mantissa bits: 0.013 * 224 = 2.912 rounds to 3.0 (step 0.25 in [2, 4)).
    assert values[1, 0].item() == 3.0
    zeros, one = quantize(torch.zeros(2, 2))
    assert one.item() == 1.0 and not zeros.any()


def test_fp8_mm_is_the_exact_product_of_the_rounded_tensors():
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(5, 64, generator=gen), torch.randn(64, 32, generator=gen)
    w_q, w_scale = quantize(w)
    x_q, x_scale = quantize(x)
    out = fp8_mm(x, w_q, w_scale)
    expected = (x_q.double() @ w_q.double()) / (x_scale.double() * w_scale.double())
    assert torch.allclose(out.double(), expected, rtol=1e-5, atol=1e-5)
    # ...and e4m3's rounding shows against the float32 product: a few percent, never zero.
    error = (out - x @ w).abs().max() / (x @ w).abs().max()
    assert 1e-3 < error.item() < 0.1
    assert fp8_mm(x.bfloat16(), w_q, w_scale).dtype == torch.bfloat16


def test_fp8_options():
    options = EngineOptions(fp8=True, fp8_first_last_bf16=True)
    assert options.fp8_layers(4) == frozenset({1, 2})
    assert EngineOptions(fp8=True).fp8_layers(3) == frozenset({0, 1, 2})
    assert EngineOptions().fp8_layers(3) == frozenset()
    with pytest.raises(ValueError, match="fp8 and batch_invariant exclude each other"):
        EngineOptions(fp8=True, batch_invariant=True)
    with pytest.raises(ValueError, match="fp8_first_last_bf16 needs fp8"):
        EngineOptions(fp8_first_last_bf16=True)
