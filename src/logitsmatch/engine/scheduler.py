"""Continuous-batching scheduler: plain Python, no torch.

Each step feeds every scheduled request a contiguous chunk of its tokens that has no KV in the
cache yet: one token for a decode, up to the step's token budget for a (chunked) prefill. When
a decode cannot get a block, the most recently arrived running request is preempted: its blocks
are freed and it goes back to the front of the queue, to be recomputed (prompt + generated
tokens) when blocks free up. It never touches another request's blocks, and since every request
fits the cache on its own (checked on admission), the oldest one always progresses: no deadlock.

With prefix caching (the allocator's ``prefix_cache``), a request being admitted first takes
the longest run of its prompt's full blocks that the cache holds and starts computing after
them; its prompt logprobs over those blocks come from the cache too. A block is offered to the
cache once it is computed (``register_computed``). A request whose next block is being computed
by a running request waits for it rather than compute it twice, as Megatron-LM's scheduler does.

The schedule is a pure function of the request history, so every rank of a pipeline replica
that sees the same requests and the same sampled tokens computes the same schedule.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from logitsmatch.engine.block_allocator import BlockAllocator
from logitsmatch.engine.config import SchedulerConfig
from logitsmatch.engine.prefix_cache import chain_keys
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
        self.cached_tokens = 0  # prompt tokens read from the prefix cache since then

    def add(self, request: Request) -> None:
        if self.allocator.prefix_cache is not None:
            request.block_keys = chain_keys(request.prompt_tokens, self.allocator.block_size)
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
        """Zero the prefill and cached token counts (the engine's reset between trials)."""
        self.prefill_tokens = 0
        self.cached_tokens = 0

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
        index, limit = 0, self.config.max_num_seqs
        while index < len(self.waiting) and budget > 0 and len(self.running) < limit:
            request = self.waiting[index]
            if self._waits_for_prefix(request):
                index += 1
                continue
            chunk = self._admit(request, budget)
            if chunk is None:
                break
            del self.waiting[index]
            request.status = Status.RUNNING
            request.prefill_end = request.num_tokens  # why: all of it has no KV, prompt or not
            self.running.append(request)
            chunks.append(chunk)
            budget -= chunk.num_tokens
        for chunk in chunks:
            chunk.request.num_prefilled += chunk.num_prefill_tokens
            self.prefill_tokens += chunk.num_prefill_tokens
        return chunks

    def register_computed(self, request: Request) -> None:
        """Offer ``request``'s newly computed full prompt blocks to the prefix cache, with the
        prompt logprobs it recorded over them (called after each step's results are applied)."""
        cache = self.allocator.prefix_cache
        if cache is None:
            return
        bs = self.allocator.block_size
        prompt, logprobs = request.prompt_tokens, request.prompt_logprobs
        table = self.allocator.table(request.request_id)
        done = min(request.num_computed, len(prompt)) // bs
        for j in range(request.num_registered, done):
            key, end = request.block_keys[j], (j + 1) * bs
            cache.register(key, table[j])
            if len(logprobs) >= end - 1:
                boundary = (prompt[end], logprobs[end - 1]) if len(logprobs) >= end else None
                cache.add_logprobs(key, logprobs[j * bs : end - 1], boundary)
        request.num_registered = max(request.num_registered, done)

    def _admit(self, request: Request, budget: int) -> ScheduledChunk | None:
        """The first chunk of a waiting request, after the cached prefix it can read."""
        recorded = len(request.prompt_logprobs)
        cached = self._read_cached_prefix(request)
        chunk = self._prefill_chunk(request, budget)
        if chunk is None and cached:  # no room after all: give the shared blocks back
            self.allocator.free(request.request_id)
            request.num_computed = request.num_registered = 0
            del request.prompt_logprobs[recorded:]
        elif cached:
            self.cached_tokens += cached
        return chunk

    def _read_cached_prefix(self, request: Request) -> int:
        """Share the cached blocks ``request`` can read; returns the tokens it skips."""
        cache = self.allocator.prefix_cache
        if cache is None or request.params.prompt_top_n:
            # why not with a prompt top-n: the cache keeps the prompt's logprobs, not its top-n.
            return 0
        bs = self.allocator.block_size
        blocks = cache.match(request.block_keys)
        # why num_tokens - 1: the last token is always computed, its logits are the next sample.
        count = self._with_logprobs(request, min(len(blocks), (request.num_tokens - 1) // bs))
        if not count:
            return 0
        self.allocator.share(request.request_id, blocks[:count])
        skip = count * bs
        request.num_computed = skip
        request.num_registered = count
        if request.params.records_prompt:
            prompt = request.prompt_tokens
            for p in range(len(request.prompt_logprobs), min(skip, len(prompt) - 1)):
                j, offset = divmod(p, bs)
                logprobs = cache.logprobs(request.block_keys[j])
                assert logprobs is not None  # checked by _with_logprobs
                inner = offset < bs - 1
                request.prompt_logprobs.append(
                    logprobs.inner[offset] if inner else logprobs.boundary[prompt[p + 1]]
                )
        return skip

    def _with_logprobs(self, request: Request, count: int) -> int:
        """How many of the first ``count`` cached blocks carry the prompt logprobs ``request``
        still has to record (all of them when it records none)."""
        if not request.params.records_prompt:
            return count
        cache = self.allocator.prefix_cache
        assert cache is not None
        bs, prompt = self.allocator.block_size, request.prompt_tokens
        recorded = len(request.prompt_logprobs)
        for j in range(count):
            end = (j + 1) * bs
            # the prompt positions of block j whose logprob is still to record: [first, last)
            first, last = max(recorded, j * bs), min(end, len(prompt) - 1)
            if first >= last:
                continue
            logprobs = cache.logprobs(request.block_keys[j])
            if logprobs is None:
                return j
            # why last == end: the block's last position then predicts prompt[end], a token past
            # the block's key, kept by that token
            if last == end and prompt[end] not in logprobs.boundary:
                return j
        return count

    def _waits_for_prefix(self, request: Request) -> bool:
        """Whether the next prompt block ``request`` would compute is being computed right now
        by a running request: it then waits a step and reads that block from the cache."""
        cache = self.allocator.prefix_cache
        if cache is None or request.params.prompt_top_n:
            return False
        keys = request.block_keys
        matched = len(cache.match(keys))
        if matched >= min(len(keys), (request.num_tokens - 1) // self.allocator.block_size):
            return False
        return any(keys[matched] in r.block_keys for r in self.running)

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
        request.num_computed = request.num_registered = 0
        request.num_preemptions += 1
        request.status = Status.WAITING
        self.num_preemptions += 1
        # Back to the front, keeping arrival order among preempted requests.
        position = 0
        while position < len(self.waiting) and self.waiting[position].arrival < request.arrival:
            position += 1
        self.waiting.insert(position, request)
