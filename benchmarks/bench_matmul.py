"""Why the engine stores weights as [in, out] and calls torch.mm (``layers.linear``).

For each of SmolLM2-135M's weight shapes, times F.linear on the checkpoint's [out, in] layout
(what HF transformers runs) against torch.mm on the transposed, contiguous [in, out] copy, at
1 row (batch-1 decode) and 32 rows (32 decoding requests). Weights are cache-warm here, so
this compares the kernels, not the memory system. Usage:
``python benchmarks/bench_matmul.py [--threads 2]``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from timing import best_of

SHAPES = {  # name: (out, in), one layer's fused matrices and the output layer
    "qkv": (960, 576),
    "o": (576, 576),
    "gate+up": (3072, 576),
    "down": (576, 1536),
    "lm_head": (49152, 576),
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'shape':<10}{'rows':>5}{'F.linear [out,in] us':>22}{'mm [in,out] us':>16}{'ratio':>8}")
    for rows in (1, 32):
        for name, (n_out, n_in) in SHAPES.items():
            weight = torch.randn(n_out, n_in)
            weight_t = weight.t().contiguous()
            x = torch.randn(rows, n_in)
            calls = 5 if name == "lm_head" else 50
            hf_style = best_of(lambda x=x, w=weight: F.linear(x, w), calls)
            ours = best_of(lambda x=x, w=weight_t: torch.mm(x, w), calls)
            print(
                f"{name:<10}{rows:>5}{hf_style * 1e6:>22.1f}{ours * 1e6:>16.1f}"
                f"{hf_style / ours:>7.2f}x"
            )


if __name__ == "__main__":
    main()
