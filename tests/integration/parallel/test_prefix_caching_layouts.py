"""Prefix caching composes with every layout: over TP, PP and DP ranks (gloo), a run with
cached blocks is bit-identical (--batch-invariant) to the single process without caching, and
prefills fewer tokens. Every rank of a replica keeps the same cache (same schedule, same
broadcast results); each DP replica keeps its own."""

import pytest
from conftest import assert_same, generate
from test_layouts import TINY_LAYOUTS

SYSTEM = (
    "You are a careful assistant. Answer in one short sentence, name your sources, and say "
    "so when you do not know. Never guess a number. "
)
PROMPTS = [SYSTEM + q for q in ("What is 2 + 2?", "Why is the sky blue?", "What is 2 + 2?")]
CACHING = ["--batch-invariant", "--prefix-caching"]
LAYOUTS = {
    "tp2": TINY_LAYOUTS["tp2"],
    "pp2-lru": ["--pipeline-model-parallel-size", "2", "--prefix-caching-eviction-policy", "lru"],
    "tp2pp2dp2": TINY_LAYOUTS["tp2pp2dp2"],
}


def run(workdir, name: str, *flags: str) -> dict:
    return generate(workdir, name, *flags, model="tiny", tokens=6, prompts=PROMPTS)


@pytest.fixture(scope="module")
def uncached(workdir):
    return run(workdir, "prefix-off", "--batch-invariant")


def test_single_process_caching_changes_no_number_and_saves_prefill(workdir, uncached):
    cached = run(workdir, "prefix-on", *CACHING)
    assert_same(uncached, cached, tol=0.0)
    saved = uncached["lifetime_prefill_token_count"] - cached["lifetime_prefill_token_count"]
    assert saved >= 2 * 16  # prompts 1 and 2 each read at least one 16-token block


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_layouts_with_caching_match_the_uncached_single_process(layout, workdir, uncached):
    cached = run(workdir, f"prefix-{layout}", *CACHING, *LAYOUTS[layout])
    assert_same(uncached, cached, tol=0.0)
    assert cached["lifetime_prefill_token_count"] < uncached["lifetime_prefill_token_count"]
