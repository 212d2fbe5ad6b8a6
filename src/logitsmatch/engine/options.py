"""EngineOptions: everything that decides how an engine is built, in one frozen, validated place.

Plain Python (no torch): the CLI turns flags into options, serving passes them to the ranks,
and a bad value fails here, before a model loads or a rank starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from logitsmatch.engine.config import CacheConfig, SchedulerConfig
from logitsmatch.engine.layout import Layout

DType = Literal["float32", "bfloat16", "float16"]
DTYPES: tuple[DType, ...] = ("float32", "bfloat16", "float16")
DEVICES = ("cpu", "cuda")
# Megatron-LM's --fp8-format and --fp8-recipe values the engine computes (engine/fp8.py).
FP8_FORMATS = ("e4m3", "hybrid")
FP8_RECIPES = ("tensorwise",)

# One default per setting; the CLI flags take theirs from here.
DEFAULT_COLLECTIVE_TIMEOUT_S = 60.0
DEFAULT_KV_CACHE_TOKENS = 16384


@dataclass(frozen=True)
class EngineOptions:
    """How to build an engine (or one rank of it).

    ``model``: a preset (smollm2-135m, gpt-583m, tiny, tiny-gpt2), a .gguf file or an HF
    folder. ``device=None``: cuda when available, else cpu. ``batch_invariant``: every matmul,
    attention and row-parallel all-reduce accumulates in float64 and rounds once, so a
    request's numbers do not depend on its batch or the layout (~2x slower).
    ``kv_cache_bytes`` (per rank), when set, overrides ``kv_cache_tokens``. ``fp8``: the
    blocks' GEMMs in emulated fp8 with tensorwise scaling (``fp8.py``), all but the first and
    last block when ``fp8_first_last_bf16`` (Megatron-LM's --first-last-layers-bf16).
    """

    model: str = "smollm2-135m"
    dtype: DType = "float32"
    device: str | None = None
    layout: Layout = field(default_factory=Layout)
    synthetic_seed: int = 1234
    batch_invariant: bool = False
    deterministic: bool = False
    collective_timeout_s: float = DEFAULT_COLLECTIVE_TIMEOUT_S
    max_seq_len: int | None = None
    kv_cache_tokens: int = DEFAULT_KV_CACHE_TOKENS
    kv_cache_bytes: int | None = None
    kv_block_size: int = 16
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    fp8: bool = False
    fp8_first_last_bf16: bool = False

    def __post_init__(self) -> None:
        if self.fp8 and self.batch_invariant:
            raise ValueError(
                "EngineOptions: fp8 and batch_invariant exclude each other (fp8 rounds every "
                "GEMM input to e4m3; batch-invariant accumulates in float64)"
            )
        if self.fp8_first_last_bf16 and not self.fp8:
            raise ValueError("EngineOptions.fp8_first_last_bf16 needs fp8")
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"EngineOptions.model must be a non-empty string, got {self.model!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"EngineOptions.dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.device is not None and self.device not in DEVICES:
            raise ValueError(f"EngineOptions.device must be one of {DEVICES} or None")
        t = self.collective_timeout_s
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise ValueError(f"EngineOptions.collective_timeout_s must be > 0, got {t!r}")
        for name in ("max_seq_len", "kv_cache_bytes"):
            value = getattr(self, name)
            if value is not None and (not _positive_int(value)):
                raise ValueError(f"EngineOptions.{name} must be a positive int, got {value!r}")
        for name in ("kv_cache_tokens", "kv_block_size", "synthetic_seed"):
            value = getattr(self, name)
            if not _positive_int(value) and not (name == "synthetic_seed" and value == 0):
                raise ValueError(f"EngineOptions.{name} must be a positive int, got {value!r}")

    def fp8_layers(self, num_layers: int) -> frozenset[int]:
        """The blocks whose GEMMs run in fp8."""
        if not self.fp8:
            return frozenset()
        skip = {0, num_layers - 1} if self.fp8_first_last_bf16 else set()
        return frozenset(range(num_layers)) - skip

    def cache_config(self, bytes_per_token: int) -> CacheConfig:
        """The KV cache of one rank; ``bytes_per_token``: its K + V bytes for one token."""
        if self.kv_cache_bytes is not None:
            return CacheConfig.from_budget(
                block_size=self.kv_block_size,
                bytes_=self.kv_cache_bytes,
                bytes_per_token=bytes_per_token,
            )
        return CacheConfig.from_budget(block_size=self.kv_block_size, tokens=self.kv_cache_tokens)


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
