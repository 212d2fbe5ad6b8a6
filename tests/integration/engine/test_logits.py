"""Top-n over the vocabulary: the greedy pick and the order of ties."""

from __future__ import annotations

import torch

from logitsmatch.engine.logits import top_n
from logitsmatch.engine.parallel_context import ParallelContext


def test_greedy_top_1_takes_the_lowest_id_of_a_tie() -> None:
    logits = torch.zeros(3, 10)
    logits[0, 3] = logits[0, 7] = 1.0  # a tie between ids 3 and 7
    logits[1] = 2.0  # every id tied
    logits[2, 9] = 0.5
    values, ids = top_n(logits, 1, vocab_start=100, ctx=ParallelContext())
    assert ids.view(-1).tolist() == [103, 100, 109]
    assert values.view(-1).tolist() == [1.0, 2.0, 0.5]
    assert ids.view(-1).tolist() == (logits.argmax(-1) + 100).tolist()


def test_top_n_orders_by_value_then_id() -> None:
    logits = torch.tensor([[0.5, 2.0, 1.0, 2.0, -1.0]])
    values, ids = top_n(logits, 3, vocab_start=0, ctx=ParallelContext())
    assert values.tolist() == [[2.0, 2.0, 1.0]]
    assert ids.tolist() == [[1, 3, 2]]
