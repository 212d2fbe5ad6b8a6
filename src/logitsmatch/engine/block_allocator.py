"""Fixed-size KV-cache blocks and per-request block tables: plain Python, no torch.

A token at position ``p`` of a request lives in slot ``table[p // block_size] * block_size +
p % block_size`` of every layer's cache tensor. With prefix caching, a full prompt block may sit
in several requests' tables at once: each block counts the tables that hold it, and goes back to
the free list (or, under ``lru``, stays cached and evictable) only when that count is zero.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from logitsmatch.engine.prefix_cache import Eviction, PrefixCache


class BlockAllocator:
    """Hands out block ids from a free list; each request holds an ordered block table.

    ``eviction``: prefix caching on, with that eviction policy (``prefix_cache``); None: off.
    """

    def __init__(self, num_blocks: int, block_size: int, eviction: Eviction | None = None) -> None:
        if num_blocks <= 0 or block_size <= 0:
            raise ValueError(
                f"BlockAllocator needs positive sizes, got {num_blocks=} {block_size=}"
            )
        self.num_blocks = num_blocks
        self.block_size = block_size
        # why a deque used FIFO: freed blocks go to the back, so a block is reused as late as
        # possible, which makes any stale-data bug show up in tests instead of hiding.
        self._free: deque[int] = deque(range(num_blocks))
        self._tables: dict[str, list[int]] = {}
        self._refs = [0] * num_blocks  # how many tables hold each block
        self.prefix_cache = PrefixCache(eviction) if eviction is not None else None

    @property
    def num_free(self) -> int:
        """Blocks a request can get: free ones and cached ones no request holds (evictable)."""
        idle = self.prefix_cache.num_idle if self.prefix_cache is not None else 0
        return len(self._free) + idle

    def blocks_needed(self, request_id: str, num_tokens: int) -> int:
        """How many more blocks ``request_id`` needs to hold ``num_tokens`` tokens in total."""
        have = len(self._tables.get(request_id, ()))
        need = -(-num_tokens // self.block_size)
        return max(0, need - have)

    def can_allocate(self, request_id: str, num_tokens: int) -> bool:
        return self.blocks_needed(request_id, num_tokens) <= self.num_free

    def allocate(self, request_id: str, num_tokens: int) -> list[int]:
        """Grow ``request_id``'s table to hold ``num_tokens`` tokens; returns the whole table."""
        need = self.blocks_needed(request_id, num_tokens)
        if need > self.num_free:
            raise MemoryError(
                f"KV cache exhausted: request {request_id!r} needs {need} more blocks, "
                f"{self.num_free} free of {self.num_blocks}"
            )
        table = self._tables.setdefault(request_id, [])
        for _ in range(need):
            block = self._take()
            self._refs[block] = 1
            table.append(block)
        return table

    def share(self, request_id: str, blocks: Sequence[int]) -> None:
        """Start ``request_id``'s (empty) table with cached ``blocks``, one more holder each."""
        if self._tables.get(request_id):
            raise AssertionError(f"request {request_id!r} shares blocks into a non-empty table")
        assert self.prefix_cache is not None, "sharing blocks needs prefix caching"
        for block in blocks:
            if self._refs[block] == 0:
                self.prefix_cache.acquired(block)
            self._refs[block] += 1
        self._tables[request_id] = list(blocks)

    def free(self, request_id: str) -> None:
        """Drop ``request_id``'s table; a no-op for an unknown id. A block no table holds any
        more goes back to the free list, unless the prefix cache keeps it."""
        table = self._tables.pop(request_id, [])
        if self.prefix_cache is None:
            for block in table:
                self._refs[block] = 0
            self._free.extend(table)
            return
        # why last to first: under lru a chain's deepest block is then released (and evicted)
        # first, so no cached block outlives its parent.
        for block in reversed(table):
            self._refs[block] -= 1
            if self._refs[block] == 0 and self.prefix_cache.released(block):
                self._free.append(block)

    def refs(self, block: int) -> int:
        """How many tables hold ``block``."""
        return self._refs[block]

    def clear_prefix_cache(self) -> None:
        """Forget every cached prefix; its idle blocks go back to the free list."""
        if self.prefix_cache is not None:
            self._free.extend(self.prefix_cache.clear())

    def _take(self) -> int:
        if self._free:
            return self._free.popleft()
        assert self.prefix_cache is not None, "num_free counted blocks that are not there"
        block = self.prefix_cache.evict()
        assert block is not None, "num_free counted blocks that are not there"
        return block

    def table(self, request_id: str) -> list[int]:
        return self._tables.get(request_id, [])

    def slots(self, request_id: str, start: int, end: int) -> list[int]:
        """Cache slot index of each position in [start, end) of ``request_id``."""
        table = self._tables[request_id]
        bs = self.block_size
        return [table[p // bs] * bs + p % bs for p in range(start, end)]

    def check_invariants(self) -> None:
        """Every block is exactly one of: free, held (its count = the tables holding it), or
        cached and idle; a table holds a block once; only full, keyed blocks are shared."""
        held: dict[int, int] = {}
        for rid, table in self._tables.items():
            if len(set(table)) != len(table):
                raise AssertionError(f"request {rid!r} holds a block twice: {table}")
            for block in table:
                held[block] = held.get(block, 0) + 1
        cache = self.prefix_cache
        for block in range(self.num_blocks):
            if self._refs[block] != held.get(block, 0):
                raise AssertionError(
                    f"block {block}: count {self._refs[block]}, held by {held.get(block, 0)}"
                )
            if held.get(block, 0) > 1 and (cache is None or cache.key_of(block) is None):
                raise AssertionError(f"block {block} is shared but holds no cached prefix")
        idle = [b for b in range(self.num_blocks) if cache is not None and cache.is_idle(b)]
        everything = list(held) + list(self._free) + idle
        if sorted(everything) != list(range(self.num_blocks)):
            raise AssertionError("block allocator lost or duplicated a block")
