"""What prefix caching saves, and what prefix-aware routing saves on 8 replicas, in one run.

1. One engine (SmolLM2-135M, fp32): 32 requests that share a ~200-token system prompt, each
   with its own question, arriving 4 per step; prefilled tokens and wall time with caching
   off, ref_zero and lru. Reported as ratios against caching off, measured in the same run
   (best of ``--rounds``).
2. Routing: the coordinator's policies (the real classes of ``serving/``) on 8 replicas whose
   caches keep every prompt block (lru, room for all), over a seeded arrival of 256 requests
   drawn from 16 prompts; prefilled tokens per policy. Plain bookkeeping: each request's
   prefill is its length minus the full blocks its replica already holds.

    python benchmarks/bench_prefix_caching.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import time

from logitsmatch.engine.config import CacheConfig, SchedulerConfig
from logitsmatch.engine.engine import LLMEngine
from logitsmatch.engine.loader import build_stage, resolve
from logitsmatch.engine.prefix_cache import chain_keys
from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.prefix_routing import PrefixAffinity
from logitsmatch.serving.routing import LeastOutstanding, ReplicaLoad, RoundRobin

SYSTEM = (
    "<|im_start|>system\nYou are a careful assistant for a public library. Answer in at most "
    "three sentences. Name one book a reader could borrow to learn more, with its author. If "
    "a question has two readings, answer the more common one and say which you chose. Never "
    "guess a number, a date or a name: say that you do not know instead. Do not use lists, "
    "tables or headings; plain prose only. Keep a friendly, plain tone suitable for a reader "
    "of any age, and avoid jargon unless the question uses it first.<|im_end|>\n"
    "<|im_start|>user\n"
)
QUESTIONS = [
    f"Question {i}: what should I read about {topic}?<|im_end|>\n<|im_start|>assistant\n"
    for i, topic in enumerate(
        [
            "rivers",
            "volcanoes",
            "the moon",
            "bees",
            "bridges",
            "glass",
            "clocks",
            "maps",
            "bread",
            "salt",
            "ships",
            "paper",
            "music",
            "stars",
            "trees",
            "rain",
        ]
        * 2
    )
]
PARAMS = SamplingParams(num_tokens_to_generate=8, return_log_probs=True, termination_id=-1)
BLOCK = 16


def run_engine(model, tokenizer, eviction: str | None) -> tuple[int, float]:
    engine = LLMEngine(
        model,
        tokenizer,
        cache=CacheConfig(block_size=BLOCK, num_blocks=1024),
        scheduler=SchedulerConfig(
            prefix_caching=eviction is not None, prefix_eviction=eviction or "ref_zero"
        ),
    )
    start = time.perf_counter()
    for i, question in enumerate(QUESTIONS):
        engine.add_request(SYSTEM + question, PARAMS)
        if i % 4 == 3:
            engine.step()
    while engine.has_unfinished():
        engine.step()
    return engine.lifetime_prefill_token_count, time.perf_counter() - start


def caching(rounds: int) -> None:
    spec = resolve("smollm2-135m")
    model, tokenizer = build_stage(spec), spec.tokenizer()
    results = {}
    for name, eviction in (("off", None), ("ref_zero", "ref_zero"), ("lru", "lru")):
        runs = [run_engine(model, tokenizer, eviction) for _ in range(rounds)]
        results[name] = (runs[0][0], min(t for _, t in runs))
    base_tokens, base_s = results["off"]
    print(
        f"prefix caching, {len(QUESTIONS)} requests sharing a {len(tokenizer.encode(SYSTEM))}"
        "-token system prompt, 4 arriving per step (SmolLM2-135M fp32, best of "
        f"{rounds}):"
    )
    for name, (tokens, seconds) in results.items():
        print(
            f"  {name:9s} prefilled {tokens:5d} tokens ({tokens / base_tokens:.2f}x of off), "
            f"wall {seconds:.2f} s ({seconds / base_s:.2f}x of off)"
        )


def routing() -> None:
    tokenizer = resolve("smollm2-135m").tokenizer()
    prompts = [SYSTEM[:120] + f" Topic {t}. " + SYSTEM[120:] for t in range(16)]
    tokens = [tokenizer.encode(p) for p in prompts]
    order = [random.Random(5).randrange(len(prompts)) for _ in range(256)]
    order = random.Random(7).sample(order, len(order))
    policies = {
        "round_robin": RoundRobin(),
        "least_outstanding (load_balanced)": LeastOutstanding(),
        "first_prefix_block": PrefixAffinity("first_prefix_block", max_requests=32),
        "longest_prefix": PrefixAffinity("longest_prefix", max_requests=32),
    }
    print(
        f"routing {len(order)} requests of {len(prompts)} prompts over 8 replicas (lru "
        "caches with room for all; prefilled tokens):"
    )
    for name, policy in policies.items():
        held: list[set[bytes]] = [set() for _ in range(8)]
        outstanding = [0] * 8
        assigned: list[int] = []
        total = 0
        for k, p in enumerate(order):
            keys = chain_keys(tokens[p], BLOCK)
            loads = [ReplicaLoad(f"r{i}", outstanding[i]) for i in range(8)]
            replica = policy(loads, keys) if isinstance(policy, PrefixAffinity) else policy(loads)
            cached = 0
            for key in keys[: (len(tokens[p]) - 1) // BLOCK]:
                if key not in held[replica]:
                    break
                cached += BLOCK
            total += len(tokens[p]) - cached
            held[replica].update(keys)
            # each request stays in flight for 4 arrivals, so loads differ as in a live run
            assigned.append(replica)
            outstanding[replica] += 1
            if k >= 4:
                outstanding[assigned[k - 4]] -= 1
        print(f"  {name:34s} {total:6d} tokens")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    caching(args.rounds)
    routing()


if __name__ == "__main__":
    main()
