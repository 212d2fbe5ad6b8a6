import pytest

from logitsmatch.engine import EngineOptions, Layout
from logitsmatch.engine.generate_args import engine_options
from logitsmatch.engine.generate_args import generate_parser as parser


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": ""}, "EngineOptions.model must be a non-empty string"),
        ({"dtype": "fp8"}, r"EngineOptions.dtype must be one of \('float32', 'bfloat16'"),
        ({"device": "tpu"}, "EngineOptions.device must be one of"),
        ({"collective_timeout_s": 0}, "collective_timeout_s must be > 0, got 0"),
        ({"collective_timeout_s": float("inf")}, "collective_timeout_s must be > 0"),
        ({"kv_cache_tokens": 0}, "kv_cache_tokens must be a positive int, got 0"),
        ({"kv_cache_bytes": -1}, "kv_cache_bytes must be a positive int, got -1"),
        ({"max_seq_len": True}, "max_seq_len must be a positive int, got True"),
        ({"kv_block_size": 1.5}, "kv_block_size must be a positive int, got 1.5"),
    ],
)
def test_bad_options_are_refused_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EngineOptions(**kwargs)


def test_options_are_frozen():
    with pytest.raises(AttributeError):
        EngineOptions().model = "tiny"  # type: ignore[misc]


def test_kv_cache_from_tokens_or_bytes():
    assert EngineOptions(kv_cache_tokens=320).cache_config(46080).num_slots == 320
    by_bytes = EngineOptions(kv_cache_tokens=16, kv_cache_bytes=46080 * 320)
    assert by_bytes.cache_config(46080).num_slots == 320


def test_flags_map_onto_options():
    args = parser().parse_args(
        [
            "--model=tiny",
            "--bf16",
            "--tensor-model-parallel-size=2",
            "--pipeline-model-parallel-size=2",
            "--pipeline-layer-split=1,3",
            "--batch-invariant",
            "--deterministic-mode",
            "--kv-cache-bytes=4096",
            "--inference-max-requests=4",
            "--inference-max-batch-tokens=64",
            "--no-chunked-prefill",
            "--prompts=x",
            "--output-path=o.json",
        ]
    )
    options = engine_options(args)
    assert options.model == "tiny" and options.dtype == "bfloat16"
    assert options.layout == Layout(2, 2, 1, (1, 3))
    assert options.batch_invariant and options.deterministic
    assert options.kv_cache_bytes == 4096
    scheduler = options.scheduler
    assert (scheduler.max_num_seqs, scheduler.max_num_batched_tokens) == (4, 64)
    assert not scheduler.chunked_prefill
