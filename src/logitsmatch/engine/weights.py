"""Weight sources: where a rank reads its tensors (or just its slices of them) from.

Names are HF Llama names (``model.layers.{i}.self_attn.q_proj.weight`` ...), whatever the file.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Protocol, cast

import torch

from logitsmatch.engine.config import ModelConfig


class WeightSource(Protocol):
    def has(self, name: str) -> bool: ...

    def get(
        self, name: str, rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """The fp32 tensor ``name``, optionally only rows [r0, r1) / columns [c0, c1)."""
        ...


class _SafeSlice(Protocol):
    """The typed face of safetensors' ``PySafeSlice`` (its stubs leave it untyped)."""

    def get_shape(self) -> list[int]: ...

    def __getitem__(self, index: slice | tuple[slice, slice]) -> torch.Tensor: ...


class _SafeOpen(Protocol):
    """The typed face of a ``safe_open(..., framework="pt")`` handle (stubs leave it untyped)."""

    def keys(self) -> list[str]: ...

    def get_slice(self, name: str) -> _SafeSlice: ...


class SafetensorsSource:
    """One or more ``*.safetensors`` files in a folder, memory-mapped; slices are read lazily."""

    def __init__(self, folder: str | Path) -> None:
        from safetensors import safe_open

        self.folder = Path(folder)
        files = sorted(self.folder.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no *.safetensors files in {self.folder}")
        self._where: dict[str, _SafeOpen] = {}
        for file in files:
            # why cast: safetensors' stubs declare safe_open's methods without types
            handle = cast(_SafeOpen, safe_open(str(file), framework="pt"))
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                self._where[key] = handle

    def has(self, name: str) -> bool:
        return name in self._where

    def get(
        self, name: str, rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None
    ) -> torch.Tensor:
        if name not in self._where:
            raise KeyError(f"tensor {name!r} not found in {self.folder}")
        view = self._where[name].get_slice(name)
        r = slice(*rows) if rows else slice(None)
        if len(view.get_shape()) == 1:
            tensor = view[r]
        else:
            tensor = view[r, slice(*cols) if cols else slice(None)]
        return tensor.to(torch.float32)


class SyntheticSource:
    """Seeded random weights: each tensor from its own generator, so any rank can make any shard.

    Scaled like a GPT init (std 0.02, output projections / sqrt(2 * layers)), norms at 1.
    """

    def __init__(self, config: ModelConfig, seed: int = 1234) -> None:
        self.config = config
        self.seed = seed
        self._shapes = _llama_shapes(config)

    def has(self, name: str) -> bool:
        return name in self._shapes

    def get(
        self, name: str, rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None
    ) -> torch.Tensor:
        shape = self._shapes[name]
        if name.endswith("norm.weight"):
            full = torch.ones(shape)
        else:
            gen = torch.Generator().manual_seed(self.seed ^ zlib.crc32(name.encode()))
            std = 0.02
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                std /= (2 * self.config.num_layers) ** 0.5
            full = torch.randn(shape, generator=gen) * std
        if rows:
            full = full[rows[0] : rows[1]]
        if cols:
            full = full[:, cols[0] : cols[1]]
        return full.contiguous()


def _llama_shapes(c: ModelConfig) -> dict[str, tuple[int, ...]]:
    d = c.head_dim
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (c.vocab_size, c.hidden_size),
        "model.norm.weight": (c.hidden_size,),
    }
    if not c.tie_embeddings:
        shapes["lm_head.weight"] = (c.vocab_size, c.hidden_size)
    if c.positions == "learned":
        shapes["model.embed_positions.weight"] = (c.max_seq_len, c.hidden_size)
    for i in range(c.num_layers):
        p = f"model.layers.{i}."
        shapes.update(
            {
                p + "input_layernorm.weight": (c.hidden_size,),
                p + "post_attention_layernorm.weight": (c.hidden_size,),
                p + "self_attn.q_proj.weight": (c.num_heads * d, c.hidden_size),
                p + "self_attn.k_proj.weight": (c.num_kv_heads * d, c.hidden_size),
                p + "self_attn.v_proj.weight": (c.num_kv_heads * d, c.hidden_size),
                p + "self_attn.o_proj.weight": (c.hidden_size, c.num_heads * d),
                p + "mlp.up_proj.weight": (c.ffn_hidden_size, c.hidden_size),
                p + "mlp.down_proj.weight": (c.hidden_size, c.ffn_hidden_size),
            }
        )
        if c.activation == "swiglu":
            shapes[p + "mlp.gate_proj.weight"] = (c.ffn_hidden_size, c.hidden_size)
    return shapes


def config_from_hf(folder: str | Path) -> ModelConfig:
    """ModelConfig from an HF Llama ``config.json``."""
    path = Path(folder) / "config.json"
    try:
        hf = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"{path}: missing (an HF checkpoint folder needs config.json)"
        ) from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    try:
        rope = hf.get("rope_parameters") or {}
        return ModelConfig(
            vocab_size=hf["vocab_size"],
            hidden_size=hf["hidden_size"],
            num_layers=hf["num_hidden_layers"],
            num_heads=hf["num_attention_heads"],
            num_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
            ffn_hidden_size=hf["intermediate_size"],
            max_seq_len=hf.get("max_position_embeddings", 2048),
            rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
            norm_eps=float(hf.get("rms_norm_eps", 1e-5)),
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
            bos_token_id=hf.get("bos_token_id"),
            eos_token_id=hf.get("eos_token_id")
            if isinstance(hf.get("eos_token_id"), int)
            else None,
        )
    except KeyError as exc:
        raise ValueError(f"{path}: missing field {exc.args[0]!r}") from exc
