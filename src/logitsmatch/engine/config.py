"""Model and engine configuration: frozen dataclasses, validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from logitsmatch.engine.prefix_cache import EVICTION_POLICIES, Eviction

Norm = Literal["rmsnorm", "layernorm"]
Activation = Literal["swiglu", "gelu"]
Positions = Literal["rope", "learned"]


@dataclass(frozen=True)
class ModelConfig:
    """Shape and numerics of a decoder-only GPT.

    Llama family by default (RMSNorm, RoPE, SwiGLU); ``norm="layernorm"``, ``activation="gelu"``
    and ``positions="learned"`` describe a GPT-2 style model with the same code path.
    """

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    ffn_hidden_size: int
    max_seq_len: int = 2048
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    norm: Norm = "rmsnorm"
    activation: Activation = "swiglu"
    positions: Positions = "rope"
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "hidden_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "ffn_hidden_size",
            "max_seq_len",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"ModelConfig: hidden_size {self.hidden_size} is not divisible by "
                f"num_heads {self.num_heads}"
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"ModelConfig: num_heads {self.num_heads} is not a multiple of "
                f"num_kv_heads {self.num_kv_heads}"
            )
        if self.head_dim % 2 and self.positions == "rope":
            raise ValueError(
                f"ModelConfig: rotary embeddings need an even head_dim, got {self.head_dim}"
            )
        if self.norm not in ("rmsnorm", "layernorm"):
            raise ValueError(f"ModelConfig.norm must be rmsnorm or layernorm, got {self.norm!r}")
        if self.activation not in ("swiglu", "gelu"):
            raise ValueError(
                f"ModelConfig.activation must be swiglu or gelu, got {self.activation!r}"
            )
        if self.positions not in ("rope", "learned"):
            raise ValueError(
                f"ModelConfig.positions must be rope or learned, got {self.positions!r}"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"ModelConfig: unknown fields {unknown}")
        return cls(**data)


@dataclass(frozen=True)
class CacheConfig:
    """Paged KV cache: ``num_blocks`` blocks of ``block_size`` token slots per layer."""

    block_size: int = 16
    num_blocks: int = 1024

    def __post_init__(self) -> None:
        if not isinstance(self.block_size, int) or self.block_size <= 0:
            raise ValueError(
                f"CacheConfig.block_size must be a positive int, got {self.block_size!r}"
            )
        if not isinstance(self.num_blocks, int) or self.num_blocks <= 0:
            raise ValueError(
                f"CacheConfig.num_blocks must be a positive int, got {self.num_blocks!r}"
            )

    @property
    def num_slots(self) -> int:
        return self.block_size * self.num_blocks

    @classmethod
    def from_budget(
        cls,
        *,
        block_size: int,
        tokens: int | None = None,
        bytes_: int | None = None,
        bytes_per_token: int | None = None,
    ) -> CacheConfig:
        """A cache holding ``tokens`` token slots, or as many as fit in ``bytes_``."""
        if (tokens is None) == (bytes_ is None):
            raise ValueError("CacheConfig.from_budget: give exactly one of tokens or bytes_")
        if bytes_ is not None:
            if not bytes_per_token:
                raise ValueError("CacheConfig.from_budget: bytes_ needs bytes_per_token")
            tokens = bytes_ // bytes_per_token
        assert tokens is not None
        return cls(block_size=block_size, num_blocks=max(1, tokens // block_size))


@dataclass(frozen=True)
class SchedulerConfig:
    """Limits of one engine step (continuous batching), and prefix caching (``prefix_cache.py``):
    on or off, and its eviction policy."""

    max_num_seqs: int = 32
    max_num_batched_tokens: int = 512
    chunked_prefill: bool = True
    prefix_caching: bool = False
    prefix_eviction: Eviction = "ref_zero"

    def __post_init__(self) -> None:
        if self.prefix_eviction not in EVICTION_POLICIES:
            raise ValueError(
                f"SchedulerConfig.prefix_eviction must be one of {list(EVICTION_POLICIES)}, "
                f"got {self.prefix_eviction!r}"
            )
        if not isinstance(self.max_num_seqs, int) or self.max_num_seqs <= 0:
            raise ValueError(
                f"SchedulerConfig.max_num_seqs must be a positive int, got {self.max_num_seqs!r}"
            )
        if not isinstance(self.max_num_batched_tokens, int) or self.max_num_batched_tokens <= 0:
            raise ValueError(
                "SchedulerConfig.max_num_batched_tokens must be a positive int, "
                f"got {self.max_num_batched_tokens!r}"
            )
