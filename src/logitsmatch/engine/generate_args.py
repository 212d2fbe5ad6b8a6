"""Flags of ``logitsmatch generate``: Megatron-LM's names, so a case's MODEL_ARGS pass through."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from logitsmatch.engine.arrivals import Arrivals
from logitsmatch.engine.config import SchedulerConfig
from logitsmatch.engine.layout import Layout
from logitsmatch.engine.options import (
    DEFAULT_COLLECTIVE_TIMEOUT_S,
    DEFAULT_KV_CACHE_TOKENS,
    DTYPES,
    FP8_FORMATS,
    FP8_RECIPES,
    EngineOptions,
)
from logitsmatch.engine.prefix_cache import EVICTION_POLICIES
from logitsmatch.engine.request import SamplingParams


def generate_parser(description: str | None = None) -> argparse.ArgumentParser:
    """``logitsmatch generate``'s flags (without torch: the harness checks a case's flags with
    it before any engine starts)."""
    p = argparse.ArgumentParser(prog="logitsmatch generate", description=description)
    p.add_argument(
        "--zmq",
        action="store_true",
        help="run through the ZeroMQ coordinator, as Megatron-LM's coordinator test does "
        "(logitsmatch generate --zmq --help for its own flags)",
    )
    add_model_flags(p)
    add_request_flags(p)
    add_run_flags(p)
    p.add_argument(
        "--deadline-s",
        type=float,
        default=600.0,
        help="whole-run deadline when launching several ranks",
    )
    p.add_argument("--run-dir", default=None, help="where rank logs go (multi-rank runs)")
    return p


def add_model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and parallelism")
    g.add_argument(
        "--model",
        default="smollm2-135m",
        help="preset (smollm2-135m, gpt-583m, tiny, tiny-gpt2), .gguf file or HF folder",
    )
    g.add_argument("--dtype", choices=DTYPES, default=None)
    g.add_argument("--bf16", action="store_true", help="same as --dtype bfloat16 (Megatron name)")
    g.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default=None,
        help="default: cuda when available, else cpu",
    )
    g.add_argument("--seed", type=int, default=0, help="sampling seed (request i uses seed + i)")
    g.add_argument("--synthetic-seed", type=int, default=1234, help="seed of synthetic weights")
    g.add_argument("--tensor-model-parallel-size", type=int, default=1)
    g.add_argument("--pipeline-model-parallel-size", type=int, default=1)
    g.add_argument("--data-parallel-size", type=int, default=1)
    g.add_argument(
        "--pipeline-layer-split",
        default=None,
        help="layers per stage, comma separated (default: even, remainder to the middle stages)",
    )
    g.add_argument(
        "--batch-invariant",
        action="store_true",
        help="accumulate matmuls and attention in float64, rounding once: a request's "
        "numbers no longer depend on its batch or the TP size (~2x slower)",
    )
    g.add_argument(
        "--fp8-format",
        choices=FP8_FORMATS,
        default=None,
        help="the blocks' GEMMs in fp8 e4m3, emulated exactly on any device (Megatron's name; "
        "hybrid is e4m3 for inference)",
    )
    g.add_argument(
        "--fp8-recipe",
        choices=FP8_RECIPES,
        default=None,
        help="fp8 scaling: tensorwise (one scale per tensor, from its amax), the only one here",
    )
    g.add_argument(
        "--first-last-layers-bf16",
        action="store_true",
        help="with --fp8-format: the first and last blocks stay in the model dtype",
    )
    g.add_argument(
        "--deterministic-mode",
        action="store_true",
        help="torch.use_deterministic_algorithms + CUBLAS_WORKSPACE_CONFIG on CUDA",
    )
    g.add_argument(
        "--collective-timeout-s",
        type=float,
        default=DEFAULT_COLLECTIVE_TIMEOUT_S,
        help="deadline of every collective and receive",
    )
    g.add_argument("--inference-max-seq-length", type=int, default=None)
    g.add_argument(
        "--kv-cache-tokens",
        type=int,
        default=DEFAULT_KV_CACHE_TOKENS,
        help="KV cache size in tokens",
    )
    g.add_argument(
        "--kv-cache-bytes",
        type=int,
        default=None,
        help="KV cache size in bytes per rank (overrides --kv-cache-tokens)",
    )
    g.add_argument("--kv-block-size", type=int, default=16)
    g.add_argument(
        "--inference-max-requests", type=int, default=32, help="max concurrent requests in a step"
    )
    g.add_argument(
        "--inference-max-batch-tokens",
        type=int,
        default=512,
        help="max tokens per step (chunked prefill splits longer prompts)",
    )
    g.add_argument("--no-chunked-prefill", action="store_true")
    g.add_argument(
        "--inference-dynamic-batching-prefix-caching",
        "--prefix-caching",
        dest="prefix_caching",
        action="store_true",
        help="share the KV blocks of equal prompt prefixes between requests (Megatron-LM's name)",
    )
    g.add_argument(
        "--inference-dynamic-batching-prefix-caching-eviction-policy",
        "--prefix-caching-eviction-policy",
        dest="prefix_eviction",
        choices=EVICTION_POLICIES,
        default="ref_zero",
        help="ref_zero: forget a cached block when no request holds it; lru: keep it until "
        "its block is needed",
    )


def add_request_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("requests and sampling")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompts", nargs="+", metavar="TEXT")
    src.add_argument("--prompt-file", type=Path, help='JSONL: one {"prompt": ...} or string a line')
    g.add_argument("--num-tokens-to-generate", type=int, default=30)
    g.add_argument("--top-k", "--top_k", dest="top_k", type=int, default=1)
    g.add_argument("--top-p", "--top_p", dest="top_p", type=float, default=0.0)
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument(
        "--termination-id",
        type=int,
        default=None,
        help="stop on this token (default: the tokenizer's EOS; -1: never)",
    )
    g.add_argument("--stop-strings", nargs="*", default=[])
    g.add_argument("--return-log-probs", action="store_true")
    g.add_argument("--top-n-logprobs", type=int, default=0)
    g.add_argument(
        "--return-prompt-top-n-logprobs",
        action="store_true",
        help="also the --top-n-logprobs most likely tokens of every prompt position 1..n-1 "
        "(prompt_top_n_logprobs)",
    )
    g.add_argument("--add-bos", action="store_true")
    g.add_argument("--output-path", type=Path, required=True)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("trials and output")
    g.add_argument(
        "--inference-repeat-n",
        type=_positive_int,
        default=1,
        metavar="N",
        help="run the requests N times in the same engine, one trial after another; write "
        "the last trial's records and one throughput figure per trial (in-process only)",
    )
    g.add_argument(
        "--incoming-requests-per-step",
        type=_positive_int,
        default=None,
        metavar="N",
        help="N requests join before each engine step (--zmq: N per burst, default 32); "
        "default: all at once",
    )
    g.add_argument(
        "--incoming-requests-per-sec",
        type=float,
        default=-1.0,
        metavar="RATE",
        help="> 0: requests arrive as a Poisson process of RATE per second, seeded by --seed "
        "(the schedule goes to the run log); <= 0: all at once",
    )
    g.add_argument(
        "--output-every-n-results",
        type=_positive_int,
        default=1,
        metavar="N",
        help="write only request i where i %% N == 0, and the last request",
    )


def arrivals_of(args: argparse.Namespace, count: int) -> Arrivals:
    """The arrival pattern of a run of ``count`` requests; raises ValueError for a bad
    combination, or a rate so low that the last request would arrive past --deadline-s."""
    arrivals = Arrivals(args.incoming_requests_per_step, args.incoming_requests_per_sec, args.seed)
    last = max(arrivals.times(count), default=0.0)
    if last > args.deadline_s:
        raise ValueError(
            f"--incoming-requests-per-sec {args.incoming_requests_per_sec}: the last of {count} "
            f"requests would arrive after {last:.0f} s, past --deadline-s {args.deadline_s:.0f}"
        )
    return arrivals


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return value


def is_written(index: int, count: int, every_n: int) -> bool:
    """Whether request ``index`` of ``count`` goes into the output JSON under
    --output-every-n-results ``every_n`` (Megatron's rule: every n-th, plus the last)."""
    return index % every_n == 0 or index == count - 1


def read_prompts(args: argparse.Namespace) -> list[str | list[int]]:
    """Prompts from --prompts, or from a JSONL --prompt-file whose lines are a string, an object
    with a "prompt" (or "text") string, or an object with "prompt_token_ids" (exact ids, e.g.
    to score a golden continuation by teacher forcing)."""
    if args.prompts is not None:
        return list(args.prompts)
    path: Path = args.prompt_file
    prompts: list[str | list[int]] = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"--prompt-file {path}: {exc.strerror}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from exc
        if isinstance(item, dict) and "prompt_token_ids" in item:
            ids = item["prompt_token_ids"]
            if not isinstance(ids, list) or not all(isinstance(t, int) for t in ids):
                raise ValueError(f"{path}:{number}: prompt_token_ids must be a list of ints")
            prompts.append(ids)
            continue
        if isinstance(item, dict):
            item = item.get("prompt", item.get("text"))
        if not isinstance(item, str):
            raise ValueError(
                f"{path}:{number}: expected a string, or an object with a 'prompt' string or "
                "'prompt_token_ids' list"
            )
        prompts.append(item)
    return prompts


def sampling_for(args: argparse.Namespace, index: int, extra_tokens: int = 0) -> SamplingParams:
    """Request ``index``'s sampling parameters (its own seed, so sampling is batch-independent)."""
    return SamplingParams(
        num_tokens_to_generate=args.num_tokens_to_generate + extra_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed + index,
        termination_id=args.termination_id,
        stop_strings=tuple(args.stop_strings),
        return_log_probs=args.return_log_probs,
        top_n_logprobs=args.top_n_logprobs,
        return_prompt_top_n_logprobs=args.return_prompt_top_n_logprobs,
    )


def layout_of(args: argparse.Namespace) -> Layout:
    split = None
    if args.pipeline_layer_split:
        split = tuple(int(x) for x in args.pipeline_layer_split.split(","))
    return Layout(
        args.tensor_model_parallel_size,
        args.pipeline_model_parallel_size,
        args.data_parallel_size,
        split,
    )


def engine_options(args: argparse.Namespace) -> EngineOptions:
    """The EngineOptions the model flags describe (validated: a bad value raises here)."""
    if args.fp8_recipe is not None and args.fp8_format is None:
        raise ValueError("--fp8-recipe needs --fp8-format")
    return EngineOptions(
        model=args.model,
        dtype="bfloat16" if args.bf16 else (args.dtype or "float32"),
        device=args.device,
        layout=layout_of(args),
        synthetic_seed=args.synthetic_seed,
        batch_invariant=args.batch_invariant,
        deterministic=args.deterministic_mode,
        collective_timeout_s=args.collective_timeout_s,
        max_seq_len=args.inference_max_seq_length,
        kv_cache_tokens=args.kv_cache_tokens,
        kv_cache_bytes=args.kv_cache_bytes,
        kv_block_size=args.kv_block_size,
        fp8=args.fp8_format is not None,
        fp8_first_last_bf16=args.first_last_layers_bf16,
        scheduler=SchedulerConfig(
            max_num_seqs=args.inference_max_requests,
            max_num_batched_tokens=args.inference_max_batch_tokens,
            chunked_prefill=not args.no_chunked_prefill,
            prefix_caching=args.prefix_caching,
            prefix_eviction=args.prefix_eviction,
        ),
    )
