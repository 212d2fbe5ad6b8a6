"""A deliberately broken engine for end-to-end tests: ``logitsmatch generate``, one weight changed.

    python tests/e2e/perturbed_engine.py --perturb-add 1e-3 [generate flags...]
    python tests/e2e/perturbed_engine.py --perturb-nan [generate flags...]

After the model is built, every element of one weight matrix (``PARAMETER``, layer 0's MLP down
projection) gets ``--perturb-add`` added, or becomes NaN; then the real generate path runs. The
engine's code is untouched: this wraps the ``build_stage`` that ``build_engine`` calls.
Single-process runs only (ranks started by torchrun would run the unwrapped module).
"""

from __future__ import annotations

import argparse
import sys

import torch

from logitsmatch.engine import build, generate
from logitsmatch.engine.model import StageModel

PARAMETER = "layers.0.mlp.down"


def perturb(model: StageModel, add: float, nan: bool) -> StageModel:
    """Change ``PARAMETER`` of ``model`` in place; a KeyError when the model has no such weight."""
    weight = dict(model.named_parameters())[PARAMETER]
    with torch.no_grad():
        if nan:
            weight.fill_(float("nan"))
        else:
            weight.add_(add)
    return model


def main(argv: list[str]) -> int:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--perturb-add", type=float, default=0.0)
    own.add_argument("--perturb-nan", action="store_true")
    args, rest = own.parse_known_args(argv)
    original = build.build_stage

    def build_perturbed(*a: object, **k: object) -> StageModel:
        return perturb(original(*a, **k), args.perturb_add, args.perturb_nan)

    build.build_stage = build_perturbed  # type: ignore[assignment]
    return generate.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
