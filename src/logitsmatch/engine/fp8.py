"""fp8 GEMMs on any device, the way Transformer Engine's tensorwise recipe computes them.

Megatron-LM's ``--fp8-format hybrid --fp8-recipe tensorwise`` runs every linear layer of the
transformer blocks in fp8: the activation and the weight are each scaled by one factor for the
whole tensor (its amax maps to e4m3's largest value, 448), rounded to float8 e4m3 (``hybrid``
uses e5m2 only for gradients, so inference is e4m3 either way), multiplied with float32
accumulation, and the product is scaled back. The numbers depend on that rounding, so it has no
"same kernels" CPU equivalent; this module computes it exactly as described instead: the e4m3
values are held in float32 (every product of two e4m3 values is exact in float32), ``torch.mm``
accumulates in float32, and the two scales are divided out at the end, as an fp8 GEMM's epilogue
does. The accumulation order is BLAS's, not cuBLASLt's: the numbers match a GPU's to float32
rounding, not bit for bit. The embedding and the output layer stay in the model's dtype.

Shapes: x [T, K], weight [K, N] (``linear``'s layout).
"""

from __future__ import annotations

import torch

E4M3_MAX = 448.0


def quantize(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(t scaled and rounded to e4m3, held in float32; the scale): one scale for the tensor."""
    amax = t.detach().abs().amax().float()
    # why: an all-zero tensor keeps scale 1 (any scale gives zeros, and 448/0 is inf).
    scale = torch.where(amax > 0, E4M3_MAX / amax, torch.ones_like(amax))
    return (t.float() * scale).to(torch.float8_e4m3fn).float(), scale


def fp8_mm(x: torch.Tensor, weight_q: torch.Tensor, weight_scale: torch.Tensor) -> torch.Tensor:
    """x [T, K] @ an e4m3 weight [K, N] (``quantize``d once at load) -> [T, N] in x's dtype."""
    x_q, x_scale = quantize(x)
    return (torch.mm(x_q, weight_q) / (x_scale * weight_scale)).to(x.dtype)
