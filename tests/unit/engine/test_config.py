import pytest

from logitsmatch.engine.config import CacheConfig, ModelConfig, SchedulerConfig


def test_cache_budget_in_tokens_or_bytes():
    assert CacheConfig.from_budget(block_size=16, tokens=1000).num_blocks == 62
    # SmolLM2 fp32: 2 (K, V) * 30 layers * 3 KV heads * 64 dims * 4 bytes = 46080 bytes a token
    cache = CacheConfig.from_budget(block_size=16, bytes_=46080 * 320, bytes_per_token=46080)
    assert (cache.num_blocks, cache.num_slots) == (20, 320)
    with pytest.raises(ValueError, match="exactly one of tokens or bytes_"):
        CacheConfig.from_budget(block_size=16)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_heads": 7}, "hidden_size 576 is not divisible by num_heads 7"),
        ({"num_kv_heads": 2}, "num_heads 9 is not a multiple of num_kv_heads 2"),
        ({"num_layers": 0}, "ModelConfig.num_layers must be a positive int, got 0"),
        ({"norm": "batchnorm"}, "ModelConfig.norm must be rmsnorm or layernorm"),
    ],
)
def test_model_config_names_the_bad_field(kwargs, message):
    base = dict(
        vocab_size=49152,
        hidden_size=576,
        num_layers=30,
        num_heads=9,
        num_kv_heads=3,
        ffn_hidden_size=1536,
    )
    with pytest.raises(ValueError, match=message):
        ModelConfig(**(base | kwargs))


def test_scheduler_limits_are_validated():
    with pytest.raises(ValueError, match="max_num_batched_tokens must be a positive int, got 0"):
        SchedulerConfig(max_num_batched_tokens=0)
