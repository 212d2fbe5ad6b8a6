"""Requests and their sampling parameters: plain Python, no torch."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field


class RequestError(ValueError):
    """A request the engine cannot run; the message names the request and the problem."""


@dataclass(frozen=True)
class SamplingParams:
    """How one request samples and when it stops.

    ``top_k=1`` is greedy (argmax, first index on ties). ``top_k=0`` means no top-k cut.
    ``seed`` makes a sampled request reproducible whatever else is in the batch.
    ``return_prompt_top_n_logprobs``: also the ``top_n_logprobs`` most likely tokens of every
    prompt position 1..n-1 (off by default: a top-n over each prompt row costs a sort).
    """

    num_tokens_to_generate: int = 30
    temperature: float = 1.0
    top_k: int = 1
    top_p: float = 0.0
    seed: int = 0
    termination_id: int | None = None
    stop_strings: tuple[str, ...] = ()
    return_log_probs: bool = False
    top_n_logprobs: int = 0
    return_prompt_top_n_logprobs: bool = False

    def __post_init__(self) -> None:
        n = self.num_tokens_to_generate
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"num_tokens_to_generate must be an int >= 1, got {n!r}")
        if (
            not isinstance(self.temperature, (int, float))
            or not math.isfinite(self.temperature)
            or self.temperature <= 0
        ):
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an int >= 0 (0 = off, 1 = greedy), got {self.top_k!r}")
        if not isinstance(self.top_p, (int, float)) or not 0.0 <= self.top_p <= 1.0:
            raise ValueError(f"top_p must be in [0, 1] (0 = off), got {self.top_p!r}")
        if self.top_k == 1 and self.top_p not in (0.0, 1.0):
            raise ValueError(f"top_p={self.top_p} has no effect with top_k=1 (greedy); drop one")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        if not isinstance(self.top_n_logprobs, int) or not 0 <= self.top_n_logprobs <= 20:
            raise ValueError(
                f"top_n_logprobs must be an int in [0, 20], got {self.top_n_logprobs!r}"
            )
        if self.return_prompt_top_n_logprobs and not self.top_n_logprobs:
            raise ValueError("return_prompt_top_n_logprobs needs top_n_logprobs >= 1")
        if any(not isinstance(s, str) or not s for s in self.stop_strings):
            raise ValueError(f"stop_strings must be non-empty strings, got {self.stop_strings!r}")

    @property
    def greedy(self) -> bool:
        return self.top_k == 1

    @property
    def prompt_top_n(self) -> int:
        """How many most likely tokens to record per prompt position (0: none)."""
        return self.top_n_logprobs if self.return_prompt_top_n_logprobs else 0

    @property
    def records_prompt(self) -> bool:
        """Whether prompt positions get results: their logprobs and/or their top-n."""
        return self.return_log_probs or self.prompt_top_n > 0


class Status(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass
class Request:
    """One sequence's bookkeeping: its tokens, how many have KV in the cache, what it produced."""

    request_id: str
    prompt: str
    prompt_tokens: list[int]
    params: SamplingParams
    arrival: int = 0
    generated: list[int] = field(default_factory=list)
    num_computed: int = 0
    prompt_logprobs: list[float] = field(default_factory=list)
    generated_logprobs: list[float] = field(default_factory=list)
    top_n: list[dict[int, float]] = field(default_factory=list)
    prompt_top_n: list[dict[int, float]] = field(default_factory=list)
    arrival_s: float = 0.0  # time.perf_counter() at add_request
    ttft: float | None = None  # seconds from arrival_s to the first generated token
    prefill_end: int = 0  # num_tokens when last admitted: positions below it are prefilled
    status: Status = Status.WAITING
    finish_reason: str | None = None
    num_preemptions: int = 0
    num_prefilled: int = 0  # prefill tokens computed for it (not read from the prefix cache)
    block_keys: list[bytes] = field(default_factory=list)  # prefix caching: a key a full block
    num_registered: int = 0  # prefix caching: leading prompt blocks already offered to the cache

    @property
    def all_tokens(self) -> list[int]:
        return self.prompt_tokens + self.generated

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_tokens) + len(self.generated)

    @property
    def max_total_tokens(self) -> int:
        return len(self.prompt_tokens) + self.params.num_tokens_to_generate
