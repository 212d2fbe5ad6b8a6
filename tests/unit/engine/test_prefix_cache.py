"""Prefix caching's bookkeeping: keys, sharing, reference counts and eviction, without torch."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logitsmatch.engine.block_allocator import BlockAllocator
from logitsmatch.engine.prefix_cache import PrefixCache, chain_keys


def test_a_key_names_the_whole_prefix_not_just_its_block():
    a = chain_keys([1, 2, 3, 4, 5, 6, 7], 2)
    b = chain_keys([9, 2, 3, 4], 2)
    assert len(a) == 3  # the trailing partial block [7] has no key
    assert a[:2] == chain_keys([1, 2, 3, 4], 2)
    assert a[1] != b[1]  # block [3, 4] behind different first blocks


def test_match_stops_at_the_first_missing_block():
    cache = PrefixCache()
    keys = chain_keys(list(range(8)), 2)
    cache.register(keys[0], 5)
    cache.register(keys[2], 6)  # an orphan: its parent is not cached
    assert cache.match(keys) == [5]
    assert not cache.register(keys[0], 7)  # the first holder stays
    with pytest.raises(AssertionError, match="block 5 already holds another prefix"):
        cache.register(keys[1], 5)


def test_unknown_eviction_policy_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"'lfu' is unknown; use one of \['ref_zero', 'lru'\]"):
        PrefixCache("lfu")  # type: ignore[arg-type]


def _cached(alloc: BlockAllocator, rid: str, tokens: list[int]) -> list[int]:
    """Give ``rid`` blocks for ``tokens`` and register its full blocks, as a computed prefill."""
    table = alloc.allocate(rid, len(tokens))
    assert alloc.prefix_cache is not None
    for block, key in zip(table, chain_keys(tokens, alloc.block_size), strict=False):
        alloc.prefix_cache.register(key, block)
    return list(table)


def test_ref_zero_forgets_a_block_when_its_last_holder_leaves():
    alloc = BlockAllocator(4, 2, "ref_zero")
    cache = alloc.prefix_cache
    assert cache is not None
    tokens = [1, 2, 3, 4, 5]
    table = _cached(alloc, "a", tokens)
    keys = chain_keys(tokens, 2)
    alloc.share("b", cache.match(keys))
    assert [alloc.refs(b) for b in table] == [2, 2, 1]
    alloc.free("a")
    assert cache.match(keys) == table[:2]  # b still holds them
    alloc.free("b")
    assert cache.match(keys) == [] and alloc.num_free == 4
    alloc.check_invariants()


def test_lru_keeps_idle_blocks_and_evicts_the_deepest_least_recent_first():
    alloc = BlockAllocator(4, 2, "lru")
    cache = alloc.prefix_cache
    assert cache is not None
    a = _cached(alloc, "a", [1, 2, 3, 4])
    b = _cached(alloc, "b", [5, 6])
    alloc.free("a")
    alloc.free("b")
    assert alloc.num_free == 4 and len(cache) == 3
    alloc.allocate("c", 2)  # the one block on the free list
    alloc.allocate("d", 2)  # evicts a's second block: released before b, deepest first
    assert cache.match(chain_keys([1, 2, 3, 4], 2)) == a[:1]
    assert cache.match(chain_keys([5, 6], 2)) == b
    alloc.check_invariants()


def test_sharing_an_idle_block_takes_it_out_of_eviction():
    alloc = BlockAllocator(2, 2, "lru")
    cache = alloc.prefix_cache
    assert cache is not None
    blocks = _cached(alloc, "a", [1, 2, 3, 4])
    alloc.free("a")
    alloc.share("b", blocks[:1])
    assert alloc.num_free == 1
    assert alloc.allocate("c", 2) == blocks[1:]  # the other one, evicted
    with pytest.raises(MemoryError):
        alloc.allocate("d", 1)
    alloc.check_invariants()


def test_clear_frees_idle_blocks_and_keeps_held_ones():
    alloc = BlockAllocator(4, 2, "lru")
    _cached(alloc, "a", [1, 2])
    held = _cached(alloc, "b", [3, 4])
    alloc.free("a")
    alloc.clear_prefix_cache()
    assert alloc.num_free == 3 and alloc.refs(held[0]) == 1
    alloc.free("b")
    assert alloc.num_free == 4
    alloc.check_invariants()


def test_every_forgotten_key_is_reported_once_in_order():
    ref_zero = BlockAllocator(4, 2, "ref_zero")
    _cached(ref_zero, "a", [1, 2, 3, 4])
    assert ref_zero.prefix_cache is not None
    assert ref_zero.prefix_cache.drain_forgotten() == []  # held: nothing forgotten yet
    ref_zero.free("a")  # released last block first
    keys = chain_keys([1, 2, 3, 4], 2)
    assert ref_zero.prefix_cache.drain_forgotten() == keys[::-1]
    assert ref_zero.prefix_cache.drain_forgotten() == []

    lru = BlockAllocator(2, 2, "lru")
    cache = lru.prefix_cache
    assert cache is not None
    _cached(lru, "a", [1, 2, 3, 4])
    lru.free("a")
    assert cache.drain_forgotten() == []  # idle, still cached
    lru.allocate("b", 2)  # evicts the deepest block
    assert cache.drain_forgotten() == keys[1:]
    lru.clear_prefix_cache()
    assert cache.drain_forgotten() == keys[:1]


# ---- property test: random admissions and finishes over shared prompts ---------------------

PROMPTS = [[1, 2, 3, 4, 5], [1, 2, 3, 4, 9, 9], [1, 2, 7], [8, 8, 8, 8]]
ops = st.lists(
    st.tuples(st.sampled_from(["add", "finish"]), st.integers(0, len(PROMPTS) - 1)),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(ops=ops, eviction=st.sampled_from(["ref_zero", "lru"]))
def test_no_block_is_freed_while_held_nor_shared_across_prefixes(ops, eviction):
    alloc = BlockAllocator(8, 2, eviction)
    cache = alloc.prefix_cache
    assert cache is not None
    prefix_of_block: dict[int, tuple[int, ...]] = {}
    live: dict[str, list[int]] = {}
    for n, (op, which) in enumerate(ops):
        if op == "add":
            tokens = PROMPTS[which]
            keys = chain_keys(tokens, 2)
            rid = f"r{n}"
            shared = cache.match(keys)[: (len(tokens) - 1) // 2]
            need = -(-len(tokens) // 2) - len(shared)
            alloc.share(rid, shared)
            if not alloc.can_allocate(rid, len(tokens)):
                alloc.free(rid)
                continue
            assert need == alloc.blocks_needed(rid, len(tokens))
            table = alloc.allocate(rid, len(tokens))
            for j, key in enumerate(keys):
                if cache.register(key, table[j]):
                    prefix_of_block[table[j]] = tuple(tokens[: (j + 1) * 2])
            for j, block in enumerate(table[: len(keys)]):
                if cache.key_of(block) is not None:
                    # a block shared or cached holds exactly this request's prefix
                    assert prefix_of_block[block] == tuple(tokens[: (j + 1) * 2])
            live[rid] = tokens
        elif live:
            rid = sorted(live)[which % len(live)]
            del live[rid]
            alloc.free(rid)
        for block in range(alloc.num_blocks):
            if cache.key_of(block) is None:
                prefix_of_block.pop(block, None)
        alloc.check_invariants()
    for rid in list(live):
        alloc.free(rid)
    assert all(alloc.refs(b) == 0 for b in range(alloc.num_blocks))
    assert alloc.num_free == alloc.num_blocks
    alloc.check_invariants()
