"""Fixed-size KV-cache blocks and per-request block tables: plain Python, no torch.

A token at position ``p`` of a request lives in slot ``table[p // block_size] * block_size +
p % block_size`` of every layer's cache tensor.
"""

from __future__ import annotations

from collections import deque


class BlockAllocator:
    """Hands out block ids from a free list; each request owns an ordered block table."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
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

    @property
    def num_free(self) -> int:
        return len(self._free)

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
        table.extend(self._free.popleft() for _ in range(need))
        return table

    def free(self, request_id: str) -> None:
        """Return all of ``request_id``'s blocks; a no-op for an unknown id."""
        self._free.extend(self._tables.pop(request_id, ()))

    def table(self, request_id: str) -> list[int]:
        return self._tables.get(request_id, [])

    def slots(self, request_id: str, start: int, end: int) -> list[int]:
        """Cache slot index of each position in [start, end) of ``request_id``."""
        table = self._tables[request_id]
        bs = self.block_size
        return [table[p // bs] * bs + p % bs for p in range(start, end)]

    def check_invariants(self) -> None:
        """Every block is either free or owned by exactly one request (used by tests)."""
        owned = [b for t in self._tables.values() for b in t]
        everything = owned + list(self._free)
        if sorted(everything) != list(range(self.num_blocks)):
            raise AssertionError("block allocator lost or duplicated a block")
