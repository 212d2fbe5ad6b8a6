"""``build_engine``: the one way to turn EngineOptions into a running LLMEngine (or one rank)."""

from __future__ import annotations

import os

import torch

from logitsmatch.engine import distributed
from logitsmatch.engine.engine import LLMEngine
from logitsmatch.engine.loader import ModelSpec, build_stage, resolve
from logitsmatch.engine.options import EngineOptions

_TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_model(options: EngineOptions) -> ModelSpec:
    """The model ``options`` name, checked against its layout; raises before any rank starts."""
    spec = resolve(options.model, options.max_seq_len, options.synthetic_seed)
    options.layout.validate(spec.config)
    return spec


def build_engine(options: EngineOptions, spec: ModelSpec | None = None) -> LLMEngine:
    """This process's engine: the whole model, or in a multi-rank job this rank's shard of it.

    ``spec``: an already resolved model (``resolve_model(options)``), to avoid resolving twice.
    """
    spec = spec or resolve_model(options)
    device = distributed.pick_device(options.device)
    if options.deterministic and device == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    _configure_threads(options.layout.world_size)
    ctx = distributed.init(
        options.layout, spec.config.num_layers, device, options.collective_timeout_s
    )
    dtype = _TORCH_DTYPES[options.dtype]
    fp8_layers = options.fp8_layers(spec.config.num_layers)
    model = build_stage(spec, ctx, dtype, device, options.batch_invariant, fp8_layers)
    cache = options.cache_config(model.kv_bytes_per_token())
    return LLMEngine(model, spec.tokenizer(), cache, options.scheduler)


def _configure_threads(world_size: int) -> None:
    """Split the machine's cores between the local ranks so they don't oversubscribe."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, local)))
