"""Continuous-batching scheduler: plain Python, no torch.

Each step feeds every scheduled request a contiguous chunk of its tokens that has no KV in the
cache yet: one token for a decode, up to the step's token budget for a (chunked) prefill. When
a decode cannot get a block, the most recently arrived running request is preempted: its blocks
are freed and it goes back to the front of the queue, to be recomputed (prompt + generated
tokens) when blocks free up. It never touches another request's blocks, and since every request
fits the cache on its own (checked on admission), the oldest one always progresses: no deadlock.

The schedule is a pure function of the request history, so every rank of a pipeline replica
that sees the same requests and the same sampled tokens computes the same schedule.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from logitsmatch.engine.block_allocator import BlockAllocator
from logitsmatch.engine.config import SchedulerConfig
from logitsmatch.engine.request import Request, Status


@dataclass(frozen=True)
class ScheduledChunk:
    """Positions [start, end) of ``request`` run this step; ``sample`` when ``end`` is its last."""

    request: Request
    start: int
    end: int

    @property
    def sample(self) -> bool:
        return self.end == self.request.num_tokens

    @property
    def num_tokens(self) -> int:
        return self.end - self.start

    @property
    def num_prefill_tokens(self) -> int:
        """Tokens of this chunk that are prefill, not a decode: every position below the
        request's length when it was last admitted (a preempted request's recompute again)."""
        return max(0, min(self.end, self.request.prefill_end) - self.start)


class Scheduler:
    def __init__(self, config: SchedulerConfig, allocator: BlockAllocator) -> None:
        self.config = config
        self.allocator = allocator
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.num_preemptions = 0
        self.prefill_tokens = 0  # prefill tokens scheduled since the last reset_counters()

    def add(self, request: Request) -> None:
        self.waiting.append(request)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def finish(self, request: Request) -> None:
        """Drop a finished or aborted request and give its blocks back."""
        self.allocator.free(request.request_id)
        if request in self.running:
            self.running.remove(request)
        elif request in self.waiting:
            self.waiting.remove(request)
        request.status = Status.FINISHED

    def reset_counters(self) -> None:
        """Zero the prefill-token count (the engine's reset between trials)."""
        self.prefill_tokens = 0

    def schedule(self) -> list[ScheduledChunk]:
        """Pick this step's chunks; mutates block tables and the running/waiting queues."""
        budget = self.config.max_num_batched_tokens
        chunks: list[ScheduledChunk] = []
        for request in self._decodes_first():
            if request not in self.running or budget <= 0:
                continue
            remaining = request.num_tokens - request.num_computed
            if remaining == 1:
                if not self._reserve_or_preempt(request):
                    continue
                chunks.append(ScheduledChunk(request, request.num_computed, request.num_tokens))
                budget -= 1
        for request in self._partial_prefills():
            if budget <= 0:
                break
            chunk = self._prefill_chunk(request, budget)
            if chunk is None:
                break
            chunks.append(chunk)
            budget -= chunk.num_tokens
        while self.waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
            request = self.waiting[0]
            chunk = self._prefill_chunk(request, budget)
            if chunk is None:
                break
            self.waiting.popleft()
            request.status = Status.RUNNING
            request.prefill_end = request.num_tokens  # why: all of it has no KV, prompt or not
            self.running.append(request)
            chunks.append(chunk)
            budget -= chunk.num_tokens
        self.prefill_tokens += sum(c.num_prefill_tokens for c in chunks)
        return chunks

    def _decodes_first(self) -> list[Request]:
        # why oldest first: a preemption victim is the newest running request, so it is
        # always one not yet scheduled this step (or the current one) -- never a request
        # whose chunk is already in the batch.
        decodes = [r for r in self.running if r.num_tokens - r.num_computed == 1]
        return sorted(decodes, key=lambda r: r.arrival)

    def _partial_prefills(self) -> list[Request]:
        return [r for r in self.running if r.num_tokens - r.num_computed > 1]

    def _prefill_chunk(self, request: Request, budget: int) -> ScheduledChunk | None:
        remaining = request.num_tokens - request.num_computed
        size = min(remaining, budget)
        if size < remaining and not self.config.chunked_prefill:
            return None
        if self.config.chunked_prefill:
            # Shrink the chunk to the blocks that are free rather than wait for all of them.
            bs = self.allocator.block_size
            have = len(self.allocator.table(request.request_id)) * bs
            room = have + self.allocator.num_free * bs - request.num_computed
            size = min(size, room)
        if size <= 0 or not self.allocator.can_allocate(
            request.request_id, request.num_computed + size
        ):
            return None
        self.allocator.allocate(request.request_id, request.num_computed + size)
        return ScheduledChunk(request, request.num_computed, request.num_computed + size)

    def _reserve_or_preempt(self, request: Request) -> bool:
        """Make room for one more token of ``request``; False if it was itself preempted."""
        while not self.allocator.can_allocate(request.request_id, request.num_tokens):
            victim = max(self.running, key=lambda r: r.arrival)
            self._preempt(victim)
            if victim is request:
                return False
        self.allocator.allocate(request.request_id, request.num_tokens)
        return True

    def _preempt(self, request: Request) -> None:
        self.allocator.free(request.request_id)
        self.running.remove(request)
        request.num_computed = 0
        request.num_preemptions += 1
        request.status = Status.WAITING
        self.num_preemptions += 1
        # Back to the front, keeping arrival order among preempted requests.
        position = 0
        while position < len(self.waiting) and self.waiting[position].arrival < request.arrival:
            position += 1
        self.waiting.insert(position, request)
