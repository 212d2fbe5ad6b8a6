import pytest

from logitsmatch.engine.config import ModelConfig
from logitsmatch.engine.layout import Layout, LayoutError

SMOLLM2 = ModelConfig(
    vocab_size=49152,
    hidden_size=576,
    num_layers=30,
    num_heads=9,
    num_kv_heads=3,
    ffn_hidden_size=1536,
)


def test_rank_order_is_tp_fastest_then_dp_then_pp():
    layout = Layout(tp=2, pp=2, dp=2)
    assert [layout.coords(r) for r in range(8)] == [
        (0, 0, 0),
        (1, 0, 0),
        (0, 0, 1),
        (1, 0, 1),
        (0, 1, 0),
        (1, 1, 0),
        (0, 1, 1),
        (1, 1, 1),
    ]
    assert all(layout.rank_of(*layout.coords(r)) == r for r in range(8))


def test_uneven_split_gives_the_extra_layers_to_middle_stages():
    layout = Layout(pp=8)
    assert layout.split(30) == (3, 4, 4, 4, 4, 4, 4, 3)
    assert layout.layer_range(7, 30) == (27, 30)
    assert Layout(pp=2).split(5) == (3, 2)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (Layout(tp=2), "tensor parallel size 2 does not divide the 9 attention heads"),
        (Layout(pp=31), "pipeline size 31 is more stages than the model's 30 layers"),
        (Layout(pp=2, layer_split=(30, 0)), "must give every stage >= 1 layer"),
    ],
)
def test_bad_layouts_are_rejected_with_the_reason(layout, message):
    with pytest.raises(LayoutError, match=message):
        layout.validate(SMOLLM2)


def test_world_size_must_match():
    with pytest.raises(LayoutError, match=r"world size 6 != tp 1 × pp 2 × dp 2 = 4"):
        Layout(pp=2, dp=2).validate(SMOLLM2, world_size=6)
