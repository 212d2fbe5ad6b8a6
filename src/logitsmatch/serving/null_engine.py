"""An engine without a model, for load tests and for measuring the serving layer's overhead.

It honours the engine API the worker drives (add_request, step, has_unfinished, abort,
progress): each step appends one token to every unfinished request. Token j of a request is
``(sum(prompt tokens) + j) % vocab_size``, so a reply shows which prompt it answers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from logitsmatch.engine.request import RequestError, SamplingParams
from logitsmatch.record import RequestRecord


@dataclass
class _Running:
    prompt: str
    tokens: list[int]
    params: SamplingParams
    started: float
    generated: list[int] = field(default_factory=list)


class NullEngine:
    def __init__(self, step_delay_s: float = 0.0, vocab_size: int = 1000) -> None:
        if step_delay_s < 0 or vocab_size < 1:
            raise ValueError(
                f"NullEngine: step_delay_s must be >= 0 and vocab_size >= 1, got "
                f"{step_delay_s!r} and {vocab_size!r}"
            )
        self.step_delay_s, self.vocab_size = step_delay_s, vocab_size
        self._running: dict[str, _Running] = {}
        self._arrivals = 0
        self.steps = 0

    def add_request(
        self, prompt: str | Sequence[int], params: SamplingParams, request_id: str | None = None
    ) -> str:
        rid = str(self._arrivals) if request_id is None else str(request_id)
        if rid in self._running:
            raise RequestError(f"request {rid!r}: duplicate request id")
        if isinstance(prompt, str):
            text, tokens = prompt, list(prompt.encode("utf-8", "surrogatepass"))
        else:
            tokens = [int(t) for t in prompt]
            text = " ".join(map(str, tokens))
        if not tokens:
            raise RequestError(f"request {rid!r}: empty prompt (0 tokens)")
        self._arrivals += 1
        self._running[rid] = _Running(text, tokens, params, time.perf_counter())
        return rid

    def has_unfinished(self) -> bool:
        return bool(self._running)

    def step(self) -> list[RequestRecord]:
        if not self._running:
            return []
        self.steps += 1
        if self.step_delay_s:
            time.sleep(self.step_delay_s)
        done = []
        for rid, req in list(self._running.items()):
            req.generated.append((sum(req.tokens) + len(req.generated)) % self.vocab_size)
            if len(req.generated) >= req.params.num_tokens_to_generate:
                done.append(self._finish(rid, "length"))
        return done

    def abort(self, request_id: str) -> RequestRecord | None:
        if request_id not in self._running:
            return None
        return self._finish(request_id, "aborted")

    def progress(self, request_id: str) -> list[int] | None:
        """Tokens generated so far, or None for an unknown (or finished) request."""
        req = self._running.get(request_id)
        return None if req is None else list(req.generated)

    def _finish(self, rid: str, reason: str) -> RequestRecord:
        req = self._running.pop(rid)
        logprobs = None
        if req.params.return_log_probs:
            n = len(req.tokens) - 1 + len(req.generated)
            logprobs = [-1.0 / (i + 1) for i in range(n)]
        return RequestRecord(
            request_id=rid,
            input_prompt=req.prompt,
            generated_tokens=list(req.generated),
            generated_text=" ".join(map(str, req.generated)),
            logprobs=logprobs,
            finish_reason=reason,
            latency=time.perf_counter() - req.started,
        )
