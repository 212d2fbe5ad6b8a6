"""What the last pipeline stage computes in a step, packed so every rank can unpack it.

Every rank of a replica knows the step's schedule, so each can compute the layout below without
being told; the last stage fills one flat float64 tensor (token ids are exact in float64) and
broadcasts it. Per scheduled chunk, in order: its prompt logprobs, then ``prompt_top_n``
(logprob, id) pairs per prompt position, then, if it samples, the token, its logprob and
``top_n`` (logprob, id) pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

from logitsmatch.engine.scheduler import ScheduledChunk


@dataclass(frozen=True)
class ChunkPlan:
    chunk: ScheduledChunk
    prompt_positions: list[int]  # p such that log p(prompt[p + 1] | prompt[: p + 1]) is recorded
    offset: int  # where this chunk's values start in the flat tensor

    @property
    def prompt_top_n_offset(self) -> int:
        """Where the prompt positions' top-n pairs start (after their logprobs)."""
        return self.offset + len(self.prompt_positions)

    @property
    def sample_offset(self) -> int:
        """Where the sampled token, its logprob and its top-n pairs start."""
        k = self.chunk.request.params.prompt_top_n
        return self.prompt_top_n_offset + 2 * k * len(self.prompt_positions)

    @property
    def width(self) -> int:
        n = self.sample_offset - self.offset
        if self.chunk.sample:
            n += 2 + 2 * self.chunk.request.params.top_n_logprobs
        return n


def plan(chunks: list[ScheduledChunk]) -> tuple[list[ChunkPlan], int]:
    """The layout of a step's results and its total size."""
    plans: list[ChunkPlan] = []
    offset = 0
    for chunk in chunks:
        request = chunk.request
        positions: list[int] = []
        if request.params.records_prompt:
            # Prompt logprobs are recorded once, even if a preempted request is recomputed.
            first = max(chunk.start, len(request.prompt_logprobs))
            last = min(chunk.end, len(request.prompt_tokens) - 1)
            positions = list(range(first, last))
        item = ChunkPlan(chunk, positions, offset)
        plans.append(item)
        offset += item.width
    return plans, offset
