"""Teacher forcing: score the golden continuation with the current engine.

Once free generation diverges from the golden, the later logprobs compare different contexts.
Scoring prompt + golden tokens as one prompt (``prompt_token_ids``, one generated token) gives
the current engine's logprob of every golden token in the golden's own context: the prompt
logprobs at positions len(prompt)-1 ... are those of the golden continuation. The drift at every
golden position then shows whether a change is a local near-tie or a shift of the whole model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

# Sampling flags that would change what is scored; scoring is greedy with one generated token.
_DROPPED = (
    "--top-k",
    "--top_k",
    "--top-p",
    "--top_p",
    "--temperature",
    "--stop-strings",
    "--termination-id",
    "--seed",
    "--top-n-logprobs",
    "--num-tokens-to-generate",
)
DEFAULT_MODEL = "smollm2-135m"  # `logitsmatch generate`'s default --model


def scoring_args(model_args: Mapping[str, Any]) -> dict[str, Any]:
    """The builtin engine's flags for scoring: same model, layout and numerics, one greedy token."""
    args = {k: v for k, v in model_args.items() if k not in _DROPPED}
    args.update({"--num-tokens-to-generate": 1, "--top-k": 1, "--return-log-probs": True})
    return args


class Codec(Protocol):
    """What the harness needs of a tokenizer: text to ids and back."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


def engine_tokenizer(model_args: Mapping[str, Any]) -> Codec:
    """The builtin engine's tokenizer for the case's model (imports the engine, hence torch)."""
    from logitsmatch.engine.loader import resolve

    return resolve(str(model_args.get("--model", DEFAULT_MODEL))).tokenizer()


def scoring_prompts(
    golden: Mapping[str, Any], request_ids: Sequence[str], encode: Callable[[str], list[int]]
) -> list[list[int]]:
    """prompt tokens + golden generated tokens, one list per request id, in order."""
    prompts = []
    for rid in request_ids:
        entry = golden[rid]
        prompts.append(encode(entry["input_prompt"]) + list(entry["generated_tokens"]))
    return prompts


def forced_logprobs(golden_request: Mapping[str, Any], scored: Mapping[str, Any]) -> list[float]:
    """The scored request's logprobs laid out like the golden's (prompt logprobs, then one per
    golden token); a ValueError when they cannot line up (another tokenizer, a missing list)."""
    golden_lp, scored_lp = golden_request.get("logprobs"), scored.get("logprobs")
    if not isinstance(golden_lp, list) or not isinstance(scored_lp, list):
        raise ValueError("no logprobs list on the golden or the scored request")
    # why: the last scored logprob is that of the one token generated after the continuation.
    forced = scored_lp[:-1]
    if len(forced) < len(golden_lp):
        raise ValueError(
            f"the scored request has {len(forced)} logprobs for {len(golden_lp)} golden "
            "positions (does the prompt tokenize differently?)"
        )
    return [float(x) for x in forced[len(forced) - len(golden_lp) :]]


def diverged_requests(verdict_requests: Sequence[Any], golden: Mapping[str, Any]) -> list[str]:
    """Request ids whose generated tokens changed and whose golden can be scored."""
    out = []
    for request in verdict_requests:
        if not any(m.metric == "generated_tokens" and m.failed for m in request.metrics):
            continue
        entry = golden.get(request.request_id)
        if (
            isinstance(entry, Mapping)
            and isinstance(entry.get("input_prompt"), str)
            and isinstance(entry.get("generated_tokens"), list)
            and isinstance(entry.get("logprobs"), list)
        ):
            out.append(request.request_id)
    return out
