"""The engine: add requests, step, collect finished records. Alone or as one rank of a replica.

Every rank of a replica (its TP × PP ranks) holds the same requests and runs the same
deterministic scheduler; the last stage's sampled tokens and logprobs are broadcast each step,
so all ranks agree on the next schedule without exchanging it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import cast

import torch
import torch.distributed as dist

from logitsmatch.engine.attention import AttentionMetadata, StepSpec
from logitsmatch.engine.block_allocator import BlockAllocator
from logitsmatch.engine.config import CacheConfig, SchedulerConfig
from logitsmatch.engine.logits import full_logits, log_normalizer, token_logprobs, top_n
from logitsmatch.engine.model import StageModel
from logitsmatch.engine.request import Request, RequestError, SamplingParams
from logitsmatch.engine.sampling import make_generator, sample
from logitsmatch.engine.scheduler import ScheduledChunk, Scheduler
from logitsmatch.engine.step_results import ChunkPlan, plan
from logitsmatch.engine.tokenizer import Tokenizer
from logitsmatch.record import RequestRecord


class LLMEngine:
    def __init__(
        self,
        model: StageModel,
        tokenizer: Tokenizer,
        cache: CacheConfig | None = None,
        scheduler: SchedulerConfig | None = None,
    ) -> None:
        cache = cache or CacheConfig()
        scheduler = scheduler or SchedulerConfig()
        self.model, self.tokenizer, self.ctx = model, tokenizer, model.ctx
        self.device = next(model.parameters()).device
        self.cache_config = cache
        eviction = scheduler.prefix_eviction if scheduler.prefix_caching else None
        self.allocator = BlockAllocator(cache.num_blocks, cache.block_size, eviction)
        self.scheduler = Scheduler(scheduler, self.allocator)
        kv_heads = model.block(0).attn.num_kv_heads if len(model.layers) else 0
        # One cache per layer of this stage, K heads then V heads: [S, 2 * Hkv_l, D].
        shape = (cache.num_slots, 2 * kv_heads, model.config.head_dim)
        self.kv_caches = [
            torch.zeros(shape, dtype=model.dtype, device=self.device) for _ in model.layers
        ]
        self._requests: dict[str, Request] = {}
        self._generators: dict[str, torch.Generator] = {}
        self._arrivals = 0
        self.steps = 0  # steps run since the last reset() (Megatron's context.step_count)

    # ---- public API -------------------------------------------------------------------------

    def add_request(
        self, prompt: str | Sequence[int], params: SamplingParams, request_id: str | None = None
    ) -> str:
        """Queue a request; raises RequestError (naming it) if it can never run."""
        rid = str(self._arrivals) if request_id is None else str(request_id)
        if rid in self._requests:
            raise RequestError(f"request {rid!r}: duplicate request id")
        if isinstance(prompt, str):
            text, tokens = prompt, self.tokenizer.encode(prompt)
        else:
            tokens = [int(t) for t in prompt]
            bad = [t for t in tokens if not 0 <= t < self.model.config.vocab_size]
            if bad:
                raise RequestError(
                    f"request {rid!r}: token ids {bad[:5]} outside the vocabulary "
                    f"[0, {self.model.config.vocab_size})"
                )
            text = self.tokenizer.decode(tokens)
        if not tokens:
            raise RequestError(f"request {rid!r}: empty prompt (0 tokens)")
        total = len(tokens) + params.num_tokens_to_generate
        if total > self.model.config.max_seq_len:
            raise RequestError(
                f"request {rid!r}: prompt of {len(tokens)} tokens + "
                f"{params.num_tokens_to_generate} "
                f"to generate = {total} exceeds the max sequence length "
                f"{self.model.config.max_seq_len}"
            )
        if total > self.cache_config.num_slots:
            raise RequestError(
                f"request {rid!r}: needs {total} KV-cache slots, the cache holds "
                f"{self.cache_config.num_slots} (raise --kv-cache-tokens or --kv-cache-bytes)"
            )
        if params.termination_id is None and self.tokenizer.eos_token_id is not None:
            params = replace(params, termination_id=self.tokenizer.eos_token_id)
        request = Request(
            rid, text, tokens, params, arrival=self._arrivals, arrival_s=time.perf_counter()
        )
        self._arrivals += 1
        self._requests[rid] = request
        if not params.greedy:
            self._generators[rid] = make_generator(params)
        self.scheduler.add(request)
        return rid

    def progress(self, request_id: str) -> list[int] | None:
        """Tokens generated so far by a running request (for streaming); None if unknown."""
        request = self._requests.get(request_id)
        return None if request is None else list(request.generated)

    def has_unfinished(self) -> bool:
        return self.scheduler.has_unfinished()

    @property
    def lifetime_prefill_token_count(self) -> int:
        """Tokens prefilled since the last reset() (Megatron's context counter of this name,
        which its engine.reset() zeroes too); a preempted request's recompute counts again."""
        return self.scheduler.prefill_tokens

    def memory_bytes(self) -> int:
        """Peak memory of this rank: on CUDA, what torch's allocator peaked at; elsewhere the
        bytes this engine allocated and holds for the run, its weights (parameters and
        buffers) plus its KV cache. Deterministic on a CPU: the same model, layout and cache
        size give the same figure on every machine (activations are not counted)."""
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        tensors = [*self.model.parameters(), *self.model.buffers(), *self.kv_caches]
        return sum(t.numel() * t.element_size() for t in tensors)

    @property
    def cached_prefix_token_count(self) -> int:
        """Prompt tokens read from the prefix cache instead of prefilled, since the last reset()."""
        return self.scheduler.cached_tokens

    def drain_forgotten_prefix_keys(self) -> list[bytes]:
        """The prefix-cache block keys this engine forgot since the last call (none without
        prefix caching): what a served replica reports to the coordinator's prefix routing."""
        cache = self.allocator.prefix_cache
        return cache.drain_forgotten() if cache is not None else []

    def reset(self) -> None:
        """Start a new trial, as Megatron's engine.reset() does: zero ``steps`` and
        ``lifetime_prefill_token_count`` and empty the prefix cache, so that each trial computes
        what the first did; the model stays.

        Raises RuntimeError while requests are unfinished.
        """
        if self.has_unfinished():
            raise RuntimeError("LLMEngine.reset: requests are still running")
        self.steps = 0
        self.scheduler.reset_counters()
        self.allocator.clear_prefix_cache()

    def abort(self, request_id: str) -> RequestRecord | None:
        """Stop a request now; returns its partial record, or None for an unknown id."""
        request = self._requests.get(request_id)
        if request is None:
            return None
        request.finish_reason = "aborted"
        return self._finish(request)

    def step(self) -> list[RequestRecord]:
        """Run one scheduled batch through this stage; returns the requests that finished."""
        chunks = self.scheduler.schedule()
        if not chunks:
            return []
        self.steps += 1
        plans, size = plan(chunks)
        hidden = self._forward(chunks)
        results = torch.zeros(size, dtype=torch.float64)
        if self.ctx.is_last_stage:
            self._compute_results(hidden, plans, results)
        if self.ctx.pp_size > 1:
            dist.broadcast(results, src=self.ctx.last_stage_rank, group=self.ctx.replica_group)
        return self._apply(plans, results.tolist())

    def generate(
        self, prompts: Sequence[str | Sequence[int]], params: SamplingParams
    ) -> list[RequestRecord]:
        """Run ``prompts`` to completion; records in prompt order."""
        ids = [self.add_request(p, params) for p in prompts]
        done: dict[str, RequestRecord] = {}
        while self.has_unfinished():
            for record in self.step():
                done[record.request_id] = record
        return [done[i] for i in ids]

    # ---- one step ---------------------------------------------------------------------------

    def _forward(self, chunks: list[ScheduledChunk]) -> torch.Tensor:
        specs = [
            StepSpec(c.start, c.end, self.allocator.slots(c.request.request_id, 0, c.end))
            for c in chunks
        ]
        meta = AttentionMetadata.build(specs, self.device)
        if self.ctx.is_first_stage:
            tokens = [t for c in chunks for t in c.request.all_tokens[c.start : c.end]]
            ids = torch.tensor(tokens, dtype=torch.long, device=self.device)
            hidden = self.model.embed_tokens(ids, meta.positions)
        else:
            hidden = torch.empty(
                len(meta.positions),
                self.model.config.hidden_size,
                dtype=self.model.dtype,
                device=self.device,
            )
            dist.recv(hidden, src=self.ctx.prev_stage_rank)
        # why cast: nn.Module.__call__ returns Any; StageModel.forward returns a Tensor
        hidden = cast(torch.Tensor, self.model(hidden, meta, self.kv_caches))
        if not self.ctx.is_last_stage:
            dist.send(hidden.contiguous(), dst=self.ctx.next_stage_rank)
        return hidden

    def _compute_results(
        self, hidden: torch.Tensor, plans: list[ChunkPlan], out: torch.Tensor
    ) -> None:
        # Rows of ``hidden`` that need logits: prompt-result positions first, then the last
        # row of every chunk that samples.
        rows: list[int] = []
        targets: list[int] = []
        sample_rows: list[int] = []
        row = 0
        for item in plans:
            c = item.chunk
            rows.extend(row + p - c.start for p in item.prompt_positions)
            targets.extend(c.request.prompt_tokens[p + 1] for p in item.prompt_positions)
            row += c.num_tokens
            if c.sample:
                sample_rows.append(row - 1)
        all_rows = torch.tensor(rows + sample_rows, dtype=torch.long, device=hidden.device)
        local = self.model.local_logits(hidden[all_rows])  # [R, V_l]
        normalizer = log_normalizer(local, self.ctx)
        n = len(rows)
        self._prompt_results(local[:n], normalizer[:n], targets, plans, out)
        self._sample_results(local[n:], normalizer[n:], plans, out)

    def _prompt_results(
        self,
        local: torch.Tensor,
        normalizer: torch.Tensor,
        targets: list[int],
        plans: list[ChunkPlan],
        out: torch.Tensor,
    ) -> None:
        """Fill every chunk's prompt logprobs and, where asked, its prompt top-n pairs."""
        start = self.model.vocab_start
        target_ids = torch.tensor(targets, dtype=torch.long, device=local.device)
        logprobs = token_logprobs(local, target_ids, start, self.ctx, normalizer).double().cpu()
        # why the max over the step's chunks: every TP rank must run the same top_n collective
        k = max([0] + [i.chunk.request.params.prompt_top_n for i in plans if i.prompt_positions])
        pairs = self._top_n_pairs(local, normalizer, k) if k else None
        cursor = 0
        for item in plans:
            n, o = len(item.prompt_positions), item.offset
            out[o : o + n] = logprobs[cursor : cursor + n]
            kp = item.chunk.request.params.prompt_top_n
            if pairs is not None and kp and n:
                o = item.prompt_top_n_offset
                out[o : o + 2 * kp * n] = pairs[cursor : cursor + n, :kp].reshape(-1)
            cursor += n

    def _top_n_pairs(self, local: torch.Tensor, normalizer: torch.Tensor, k: int) -> torch.Tensor:
        """The k most likely tokens of each row as (logprob, id) pairs: [R, k, 2] float64."""
        values, ids = top_n(local, k, self.model.vocab_start, self.ctx)
        logprobs = (values - normalizer.unsqueeze(-1)).double().cpu()
        return torch.stack([logprobs, ids.double().cpu()], dim=-1)

    def _sample_results(
        self,
        local: torch.Tensor,
        normalizer: torch.Tensor,
        plans: list[ChunkPlan],
        out: torch.Tensor,
    ) -> None:
        """Sample the next token of every chunk that samples; fill its logprob and top-n."""
        start = self.model.vocab_start
        samplers = [item for item in plans if item.chunk.sample]
        max_n = max([1] + [i.chunk.request.params.top_n_logprobs for i in samplers])
        best_values, best_ids = top_n(local, max_n, start, self.ctx)
        tokens = best_ids[:, 0].clone()
        needs_full = [j for j, i in enumerate(samplers) if not i.chunk.request.params.greedy]
        if needs_full:
            full = full_logits(local[needs_full], self.ctx)
            for row_in_full, j in enumerate(needs_full):
                request = samplers[j].chunk.request
                tokens[j] = sample(
                    full[row_in_full], request.params, self._generators[request.request_id]
                )
        sample_lp = token_logprobs(local, tokens, start, self.ctx, normalizer)
        best_lp = (best_values - normalizer.unsqueeze(-1)).double().cpu()
        for j, item in enumerate(samplers):
            o = item.sample_offset
            out[o] = float(tokens[j])
            out[o + 1] = float(sample_lp[j])
            k = item.chunk.request.params.top_n_logprobs
            for m in range(k):
                out[o + 2 + 2 * m] = best_lp[j, m]
                out[o + 3 + 2 * m] = float(best_ids[j, m])

    def _apply(self, plans: list[ChunkPlan], values: list[float]) -> list[RequestRecord]:
        finished = []
        for item in plans:
            c = item.chunk
            request = c.request
            request.num_computed = c.end
            n = len(item.prompt_positions)
            request.prompt_logprobs.extend(values[item.offset : item.offset + n])
            k = request.params.prompt_top_n
            for i in range(n if k else 0):
                o = item.prompt_top_n_offset + 2 * k * i
                request.prompt_top_n.append(_top_n_map(values[o : o + 2 * k]))
            self.scheduler.register_computed(request)
            if not c.sample:
                continue
            o = item.sample_offset
            token, logprob = int(values[o]), values[o + 1]
            request.generated.append(token)
            request.generated_logprobs.append(logprob)
            if request.ttft is None:
                request.ttft = time.perf_counter() - request.arrival_s
            k = request.params.top_n_logprobs
            if k:
                request.top_n.append(_top_n_map(values[o + 2 : o + 2 + 2 * k]))
            if self._check_stop(request, token):
                finished.append(self._finish(request))
        return finished

    def _check_stop(self, request: Request, token: int) -> bool:
        params = request.params
        if token == params.termination_id:
            request.finish_reason = "termination_id"
        elif len(request.generated) >= params.num_tokens_to_generate:
            request.finish_reason = "length"
        elif params.stop_strings and any(
            s in self.tokenizer.decode(request.generated) for s in params.stop_strings
        ):
            request.finish_reason = "stop_string"
        return request.finish_reason is not None

    def _finish(self, request: Request) -> RequestRecord:
        self.scheduler.finish(request)
        rid = request.request_id
        del self._requests[rid]
        self._generators.pop(rid, None)
        text = self.tokenizer.decode(request.generated)
        if request.finish_reason == "stop_string":
            cut = min(text.find(s) for s in request.params.stop_strings if s in text)
            text = text[:cut]
        params = request.params
        logs = params.return_log_probs
        return RequestRecord(
            request_id=rid,
            input_prompt=request.prompt,
            generated_text=text,
            generated_tokens=list(request.generated),
            logprobs=request.prompt_logprobs + request.generated_logprobs if logs else None,
            prompt_logprobs=list(request.prompt_logprobs) if logs else None,
            generated_logprobs=list(request.generated_logprobs) if logs else None,
            top_n_logprobs=_top_n_json(request.top_n) if params.top_n_logprobs else None,
            prompt_top_n_logprobs=_top_n_json(request.prompt_top_n)
            if params.prompt_top_n
            else None,
            finish_reason=request.finish_reason or "aborted",
            latency=time.perf_counter() - request.arrival_s,
            ttft=request.ttft,
            step_count=self.steps,
            prefill_token_count=request.num_prefilled,
        )


def _top_n_map(pairs: list[float]) -> dict[int, float]:
    """(logprob, id) pairs, flat, as {id: logprob}."""
    return {int(pairs[m + 1]): pairs[m] for m in range(0, len(pairs), 2)}


def _top_n_json(top: list[dict[int, float]]) -> list[dict[str, float]]:
    """Top-n maps with string keys, as JSON (and the record) hold them."""
    return [{str(k): v for k, v in d.items()} for d in top]
