"""Prefix caching's index: which full KV block holds which token prefix. Plain Python, no torch.

A full block of a prompt is keyed by a hash chained over the whole prefix up to the block's end
(``chain_keys``), so two blocks share a key only when every token before them is the same too.
The cache maps each key to the one block that holds it, and keeps beside it the prompt logprobs
computed over that block, so a request that reads the block from the cache still reports the
logprobs of the positions it did not compute.

Eviction, as Megatron-LM names it (``--inference-dynamic-batching-prefix-caching-eviction-
policy``): ``ref_zero`` forgets a block the moment no request holds it (blocks are shared only
between requests alive at the same time); ``lru`` keeps it cached until a block is needed and
then evicts the least recently released one. A request releases its blocks last to first, so a
chain is evicted from its end and a cached block's parent is never evicted before it.

Every key the cache forgets (evicted, released under ``ref_zero``, or cleared) is kept, up to
``MAX_FORGOTTEN``, until ``drain_forgotten`` takes it: a served replica reports them so that the
coordinator's prefix routing stops counting on blocks the replica no longer holds.
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Eviction = Literal["ref_zero", "lru"]
EVICTION_POLICIES: tuple[Eviction, ...] = ("ref_zero", "lru")
# why a bound: an engine nobody drains (in-process runs) must not grow; a lost report only
# costs the coordinator a routing guess.
MAX_FORGOTTEN = 1 << 16


def chain_keys(tokens: Sequence[int], block_size: int) -> list[bytes]:
    """One key per full block of ``tokens``: sha256 of the previous block's key and this
    block's token ids (a trailing partial block has none)."""
    keys: list[bytes] = []
    parent = b""
    for start in range(0, len(tokens) - block_size + 1, block_size):
        ids = struct.pack(f"<{block_size}q", *tokens[start : start + block_size])
        parent = hashlib.sha256(parent + ids).digest()
        keys.append(parent)
    return keys


@dataclass
class BlockLogprobs:
    """The prompt logprobs over one cached block (positions ``j*bs .. (j+1)*bs - 1``).

    ``inner``: the logprob of each next token that lies in the block (bs - 1 values); both the
    position and its target are in the key's prefix. ``boundary``: the last position's logprob
    of the token that follows the block, by that token (it is outside the key's prefix, so
    prompts that diverge right after the block each add their own).
    """

    inner: tuple[float, ...]
    boundary: dict[int, float] = field(default_factory=dict)


@dataclass
class _Entry:
    block: int
    logprobs: BlockLogprobs | None = None


class PrefixCache:
    """Key -> block, the reverse, and the blocks no request holds (lru only)."""

    def __init__(self, eviction: Eviction = "ref_zero") -> None:
        if eviction not in EVICTION_POLICIES:
            raise ValueError(
                f"prefix caching eviction policy {eviction!r} is unknown; "
                f"use one of {list(EVICTION_POLICIES)}"
            )
        self.eviction = eviction
        self._entries: dict[bytes, _Entry] = {}
        self._key_of: dict[int, bytes] = {}
        # lru: block -> when it was released; the smallest is evicted first.
        self._idle: dict[int, int] = {}
        self._clock = 0
        self._forgotten: deque[bytes] = deque(maxlen=MAX_FORGOTTEN)

    @property
    def num_idle(self) -> int:
        """Cached blocks no request holds: free to take, by evicting them."""
        return len(self._idle)

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, keys: Sequence[bytes]) -> list[int]:
        """The blocks of the longest cached prefix of ``keys``: a chain, cut at the first miss."""
        blocks: list[int] = []
        for key in keys:
            entry = self._entries.get(key)
            if entry is None:
                break
            blocks.append(entry.block)
        return blocks

    def is_idle(self, block: int) -> bool:
        return block in self._idle

    def holds(self, key: bytes) -> bool:
        return key in self._entries

    def key_of(self, block: int) -> bytes | None:
        return self._key_of.get(block)

    def logprobs(self, key: bytes) -> BlockLogprobs | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.logprobs

    def register(self, key: bytes, block: int) -> bool:
        """Make ``block`` the holder of ``key``; False (nothing changes) if a block holds it."""
        if key in self._entries:
            return False
        if block in self._key_of:
            raise AssertionError(f"block {block} already holds another prefix")
        self._entries[key] = _Entry(block)
        self._key_of[block] = key
        return True

    def add_logprobs(
        self, key: bytes, inner: Sequence[float], boundary: tuple[int, float] | None
    ) -> None:
        """Keep the prompt logprobs a request computed over the block that holds ``key``."""
        entry = self._entries.get(key)
        if entry is None:
            return
        if entry.logprobs is None:
            entry.logprobs = BlockLogprobs(tuple(inner))
        if boundary is not None:
            entry.logprobs.boundary.setdefault(*boundary)

    def released(self, block: int) -> bool:
        """No request holds ``block`` any more; True if it goes back to the free list now."""
        key = self._key_of.get(block)
        if key is None:
            return True
        if self.eviction == "ref_zero":
            self._forget(key)
            return True
        self._clock += 1
        self._idle[block] = self._clock
        return False

    def acquired(self, block: int) -> None:
        """A request took an idle cached block: it is no longer evictable."""
        self._idle.pop(block, None)

    def evict(self) -> int | None:
        """Forget the least recently released idle block and return it (None: none idle)."""
        if not self._idle:
            return None
        block = min(self._idle, key=self._idle.__getitem__)
        del self._idle[block]
        self._forget(self._key_of[block])
        return block

    def clear(self) -> list[int]:
        """Forget everything; returns the idle blocks (now free). Held blocks stay held."""
        idle = sorted(self._idle)
        self._forgotten.extend(self._entries)
        self._entries.clear()
        self._key_of.clear()
        self._idle.clear()
        return idle

    def drain_forgotten(self) -> list[bytes]:
        """The keys forgotten since the last call (oldest first), at most MAX_FORGOTTEN."""
        keys = list(self._forgotten)
        self._forgotten.clear()
        return keys

    def _forget(self, key: bytes) -> None:
        entry = self._entries.pop(key)
        del self._key_of[entry.block]
        self._forgotten.append(key)
