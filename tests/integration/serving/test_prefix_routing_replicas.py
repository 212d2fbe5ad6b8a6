"""Prefix-aware routing over 8 real replicas (LLMEngine on the tiny model, prefix caching with
lru eviction), a live coordinator and the ZMQ driver: repeated prompts prefill fewer tokens
than round robin, by an exact count.

Why exact: under lru a replica keeps every prompt block it computed (the cache has room for
all), so whatever the timing, the first request of a prompt on a replica prefills all of it
and each later one only the block holding its last token and what follows. The arrival order
is a seeded shuffle, so both policies' counts are known in advance.
"""

from __future__ import annotations

import random
import time

import pytest

from logitsmatch.engine.build import build_engine
from logitsmatch.engine.config import SchedulerConfig
from logitsmatch.engine.options import EngineOptions
from logitsmatch.engine.prefix_cache import chain_keys
from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.driver import run_driver
from logitsmatch.serving.prefix_routing import PrefixAffinity

REPLICAS = 8
BLOCK = 16
TOPICS = ["rivers of Europe", "prime numbers", "the French revolution", "how glass is made"]
PROMPTS = [
    f"Write three careful, short sentences for a school book about {topic}, and cite one "
    "book that a reader could find in a public library."
    for topic in TOPICS
]
ORDER = [i for i in range(len(PROMPTS)) for _ in range(6)]
random.Random(13).shuffle(ORDER)  # the seeded arrival: 24 requests, 6 of each prompt
OPTIONS = EngineOptions(
    model="tiny",
    device="cpu",
    scheduler=SchedulerConfig(prefix_caching=True, prefix_eviction="lru"),
)


def expected_prefill(replica_of: list[int], lengths: list[int]) -> int:
    """A prompt's first request on a replica prefills it all, each later one past its cached
    full blocks (all but the block holding its last token)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for prompt, replica in zip(ORDER, replica_of, strict=True):
        n = lengths[prompt]
        total += n - ((n - 1) // BLOCK * BLOCK if (prompt, replica) in seen else 0)
        seen.add((prompt, replica))
    return total


def serve(threads, **routing) -> dict:
    engines = [build_engine(OPTIONS) for _ in range(REPLICAS)]
    coordinator = threads.coordinator(**routing)
    for r, engine in enumerate(engines):
        threads.worker(coordinator.address, f"r{r}", engine)
    params = SamplingParams(num_tokens_to_generate=4, return_log_probs=True, termination_id=-1)
    return run_driver(
        coordinator.address,
        [PROMPTS[i] for i in ORDER],
        params,
        incoming_requests_per_step=8,
        stagger_lengths=False,
        deadline_s=120,
        min_replicas=REPLICAS,
    ), engines


@pytest.fixture(scope="module")
def lengths() -> list[int]:
    tokenizer = build_engine(OPTIONS).tokenizer
    return [len(tokenizer.encode(p)) for p in PROMPTS]


def test_longest_prefix_keeps_each_prompt_on_one_replica(threads, lengths):
    tokenizer = build_engine(OPTIONS).tokenizer
    affinity = PrefixAffinity("longest_prefix", max_requests=32)
    out, engines = serve(
        threads,
        policy="round_robin",  # what a request without block keys would get
        prefix=affinity,
        prompt_keys=lambda p: chain_keys(tokenizer.encode(p), BLOCK),
    )
    round_robin = expected_prefill([k % REPLICAS for k in range(len(ORDER))], lengths)
    # each prompt stays where it went first: one full prefill per prompt
    assert out["lifetime_prefill_token_count"] == expected_prefill([0] * len(ORDER), lengths)
    assert out["lifetime_prefill_token_count"] < round_robin
    assert sum(e.cached_prefix_token_count for e in engines) > 0
    by_prompt = {}
    for k, prompt in enumerate(ORDER):
        by_prompt.setdefault(prompt, []).append(out[str(k)]["generated_tokens"])
    assert all(len({tuple(t) for t in runs}) == 1 for runs in by_prompt.values())


def test_round_robin_prefills_each_prompt_once_per_replica(threads, lengths):
    out, _ = serve(threads, policy="round_robin")
    replica_of = [k % REPLICAS for k in range(len(ORDER))]
    assert out["lifetime_prefill_token_count"] == expected_prefill(replica_of, lengths)


def _holders(affinity: PrefixAffinity, keys: list[bytes]) -> set[str]:
    return {f"r{r}" for r in range(2) for k in keys if affinity.holds(f"r{r}", k)}


@pytest.mark.parametrize("eviction", ["ref_zero", "lru"])
def test_the_coordinator_forgets_what_a_replica_reports_it_dropped(threads, eviction):
    """Under ref_zero a finished request's blocks leave the replica's cache at once: the
    replica reports their keys and the coordinator stops routing on them. Under lru they stay
    cached, so the coordinator keeps them."""
    options = EngineOptions(
        model="tiny",
        device="cpu",
        scheduler=SchedulerConfig(prefix_caching=True, prefix_eviction=eviction),
    )
    engines = [build_engine(options) for _ in range(2)]
    tokenizer = engines[0].tokenizer
    keys = chain_keys(tokenizer.encode(PROMPTS[0]), BLOCK)
    affinity = PrefixAffinity("longest_prefix", max_requests=32)
    coordinator = threads.coordinator(
        policy="round_robin",
        prefix=affinity,
        prompt_keys=lambda p: chain_keys(tokenizer.encode(p), BLOCK),
    )
    for r, engine in enumerate(engines):
        threads.worker(coordinator.address, f"r{r}", engine)
    params = SamplingParams(num_tokens_to_generate=2, termination_id=-1)
    run_driver(coordinator.address, [PROMPTS[0]], params, 1, deadline_s=60, min_replicas=2)
    deadline = time.monotonic() + 10
    while eviction == "ref_zero" and _holders(affinity, keys) and time.monotonic() < deadline:
        time.sleep(0.05)
    if eviction == "ref_zero":
        assert _holders(affinity, keys) == set()
    else:
        time.sleep(0.5)  # a report, had one been sent, would have arrived by now
        # why not always r0: the replica that registered first gets the tie, and the two
        # workers race to register
        holders = _holders(affinity, keys)
        assert len(holders) == 1, holders
        engine = engines[int(holders.pop().removeprefix("r"))]
        assert engine.allocator.prefix_cache is not None
        assert engine.allocator.prefix_cache.match(keys) != []
