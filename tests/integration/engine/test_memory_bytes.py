"""mem-max-allocated-bytes on a CPU: the engine's weights plus its KV cache, exactly."""

import torch

from logitsmatch.engine.build import build_engine
from logitsmatch.engine.options import EngineOptions


def memory(**options) -> tuple[int, int]:
    engine = build_engine(EngineOptions(model="tiny", device="cpu", **options))
    c = engine.model.config
    per_token = c.num_layers * 2 * c.num_kv_heads * c.head_dim
    return engine.memory_bytes(), per_token


def test_the_kv_cache_adds_exactly_its_slots_and_the_dtype_sets_their_width():
    small, per_token = memory(kv_cache_tokens=512)
    large, _ = memory(kv_cache_tokens=1024)
    assert large - small == 512 * per_token * 4  # float32 K and V
    small16, _ = memory(kv_cache_tokens=512, dtype="bfloat16")
    large16, _ = memory(kv_cache_tokens=1024, dtype="bfloat16")
    assert large16 - small16 == 512 * per_token * 2
    params = sum(p.numel() for p in build_engine(EngineOptions(model="tiny")).model.parameters())
    assert small16 < small and small - 512 * per_token * 4 >= params * 4
    assert torch.get_default_dtype() == torch.float32
