import pytest

from logitsmatch.engine.block_allocator import BlockAllocator


def test_slots_follow_the_block_table_across_a_block_boundary():
    alloc = BlockAllocator(num_blocks=4, block_size=4)
    alloc.allocate("a", 3)
    alloc.allocate("b", 4)
    table = alloc.allocate("a", 5)  # grows into a second, non-contiguous block
    assert table == [0, 2]
    assert alloc.slots("a", 0, 5) == [0, 1, 2, 3, 8]
    assert alloc.slots("b", 0, 4) == [4, 5, 6, 7]


def test_exact_block_boundary_needs_no_extra_block():
    alloc = BlockAllocator(num_blocks=2, block_size=4)
    alloc.allocate("a", 4)
    assert alloc.blocks_needed("a", 4) == 0
    assert alloc.blocks_needed("a", 5) == 1


def test_exhaustion_raises_and_recovers_after_free():
    alloc = BlockAllocator(num_blocks=2, block_size=4)
    alloc.allocate("a", 8)
    assert not alloc.can_allocate("b", 1)
    with pytest.raises(MemoryError, match="request 'b' needs 1 more blocks, 0 free of 2"):
        alloc.allocate("b", 1)
    alloc.free("a")
    assert alloc.allocate("b", 8) == [0, 1]
    alloc.check_invariants()


def test_freed_blocks_are_reused_last():
    alloc = BlockAllocator(num_blocks=3, block_size=2)
    alloc.allocate("a", 2)
    alloc.free("a")
    assert alloc.allocate("b", 2) == [1]
    alloc.check_invariants()


def test_free_unknown_id_is_a_noop():
    alloc = BlockAllocator(num_blocks=1, block_size=1)
    alloc.free("nobody")
    assert alloc.num_free == 1
