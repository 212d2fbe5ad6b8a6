"""The one flag table: every MODEL_ARGS flag a case may carry, and what the builtin engine does
with it.

A case's MODEL_ARGS use Megatron-LM's names, and Megatron-LM's own case folders carry flags for
its training stack, its checkpoints and its GPU kernels beside the ones that shape the
requests. Every flag is in exactly one row here, with how it is used:

- ``engine``: passed to ``logitsmatch generate`` (under ``engine_flag`` when it is spelled
  differently there); ``engine_flag=""`` means the engine does it without a flag.
- ``harness``: read by the harness itself (the prompts, the output path, the driver's pace).
- ``model``: describes the model; read by the model binding (``binding.py``).
- ``gpu-only``: a GPU execution detail (CUDA graphs, fused kernels, memory pools): the builtin
  engine computes the same math with eager kernels on every device, so it is a no-op here.
- ``not-applicable``: no meaning for an inference run (training, logging); says why.
- ``needs``: a feature the builtin engine does not have yet; a case that uses it is marked
  with the feature's name and not run.

A flag in no row is an error at load naming the file, the flag and the nearest known flag.
Plain Python: the noxfile lists cases without torch.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logitsmatch.engine.prefix_cache import EVICTION_POLICIES
from logitsmatch.harness.cases.fields import CaseError, Driver
from logitsmatch.harness.text_enum import TextEnum
from logitsmatch.serving.prefix_routing import PREFIX_POLICIES


class Use(TextEnum):
    """How a MODEL_ARGS flag is used (see the module docstring)."""

    ENGINE = "engine"
    HARNESS = "harness"
    MODEL = "model"
    GPU_ONLY = "gpu-only"
    NOT_APPLICABLE = "not-applicable"
    NEEDS = "needs"


@dataclass(frozen=True)
class RunShape:
    """What a blocker may look at beside the flag's value."""

    driver: Driver
    prompts: int | None  # None: not known at load (a prompt file read when the case runs)
    megatron: bool = False  # a Megatron-LM folder: its flags mean what they mean upstream


# (value, shape) -> the missing feature's name when this value needs one, else None.
Blocker = Callable[[Any, RunShape], str | None]
PREFIX_ROUTING = "prefix-aware routing, which the ZMQ coordinator does (DRIVER zmq)"


@dataclass(frozen=True)
class FlagRule:
    """One row: how ``use``s the flag, ``how`` in words (or why not)."""

    use: Use
    how: str
    engine_flag: str | None = None  # ENGINE: the generate flag; None = the same name
    words: Callable[[Any], list[str]] | None = None  # ENGINE: the value as argv words
    blocker: Blocker | None = None  # the feature some values need (any use)
    choices: tuple[str, ...] = ()  # the values it takes, checked at load (empty: any)


def _engine(how: str, flag: str | None = None, words: Callable[[Any], list[str]] | None = None):
    return FlagRule(Use.ENGINE, how, flag, words)


def _gpu(how: str) -> FlagRule:
    return FlagRule(Use.GPU_ONLY, how)


def _na(why: str) -> FlagRule:
    return FlagRule(Use.NOT_APPLICABLE, why)


def _model(how: str) -> FlagRule:
    return FlagRule(Use.MODEL, how)


def _routing_blocker(value: Any, shape: RunShape) -> str | None:
    # why not in-process: its replicas take the prompts round robin; only the coordinator routes.
    return None if value == "load_balanced" or shape.driver is Driver.ZMQ else PREFIX_ROUTING


_SAME = "passed to the engine as is"
KV_TOKENS_PER_RANK = 4096
_CUDA_GRAPHS = "CUDA graphs replay the same kernels; the builtin engine launches them eagerly"
_CHECKPOINT = "how Megatron-LM reads its checkpoint; the model binding decides what is loaded"

TABLE: dict[str, FlagRule] = {
    # --- the engine's own flags (logitsmatch generate), Megatron's spelling where both exist
    **{
        flag: _engine(_SAME)
        for flag in (
            "--dtype",
            "--bf16",
            "--seed",
            "--tensor-model-parallel-size",
            "--pipeline-model-parallel-size",
            "--data-parallel-size",
            "--pipeline-layer-split",
            "--batch-invariant",
            "--deterministic-mode",
            "--collective-timeout-s",
            "--inference-max-seq-length",
            "--kv-cache-tokens",
            "--kv-cache-bytes",
            "--kv-block-size",
            "--inference-max-requests",
            "--inference-max-batch-tokens",
            "--no-chunked-prefill",
            "--num-tokens-to-generate",
            "--top-k",
            "--top_k",
            "--top-p",
            "--top_p",
            "--temperature",
            "--termination-id",
            "--stop-strings",
            "--return-log-probs",
            "--top-n-logprobs",
            "--add-bos",
            "--inference-repeat-n",
            "--output-every-n-results",
            "--return-prompt-top-n-logprobs",
            "--fp8-format",
            "--fp8-recipe",
            "--first-last-layers-bf16",
            "--inference-dynamic-batching-prefix-caching",
        )
    },
    "--inference-dynamic-batching-prefix-caching-eviction-policy": FlagRule(
        Use.ENGINE, _SAME, choices=EVICTION_POLICIES
    ),
    "--inference-dynamic-batching-max-requests": _engine(
        "the engine's --inference-max-requests (requests in one step)", "--inference-max-requests"
    ),
    "--inference-dynamic-batching-max-tokens": _engine(
        "the engine's --inference-max-batch-tokens (tokens in one step; longer prompts are "
        "prefilled in chunks)",
        "--inference-max-batch-tokens",
    ),
    "--stop-words": _engine(
        "the engine's --stop-strings, the value split into words as Megatron-LM's launcher's "
        "shell does",
        "--stop-strings",
        lambda value: shlex.split(str(value)),
    ),
    "--enable-chunked-prefill": _engine(
        "the engine prefills prompts longer than --inference-max-batch-tokens in chunks by default",
        "",
    ),
    "--distributed-backend": _engine("the engine picks gloo on CPU and nccl on CUDA by itself", ""),
    # --- read by the harness
    "--prompts": FlagRule(Use.HARNESS, "the requests' prompts, passed in a file of the run's"),
    "--prompt-file": FlagRule(Use.HARNESS, "read when the case runs (JSONL: text or prompt)"),
    "--prompt-file-num-truncate": FlagRule(Use.HARNESS, "only the file's first N prompts"),
    "--output-path": FlagRule(Use.HARNESS, "every run writes to an output path of its own"),
    "--incoming-requests-per-step": _engine(
        "that many requests join before each engine step (DRIVER zmq: per burst through the "
        "coordinator)"
    ),
    "--incoming-requests-per-sec": _engine(
        "> 0: a Poisson process of that rate, seeded by --seed; <= 0 (Megatron-LM's default "
        "-1): every request at once"
    ),
    # --- the model (binding.py)
    "--model": _model("a preset, .gguf file or HF folder"),
    "--synthetic-seed": _model("the seed of a synthetic (stand-in) model's weights"),
    "--num-layers": _model("the architecture of the stand-in model"),
    "--hidden-size": _model("the architecture of the stand-in model"),
    "--num-attention-heads": _model("the architecture of the stand-in model"),
    "--num-query-groups": _model("the stand-in's KV heads (default: one per head)"),
    "--group-query-attention": _model("with --num-query-groups"),
    "--ffn-hidden-size": _model("the stand-in's MLP width (default 4 × hidden, Megatron's)"),
    "--max-position-embeddings": _model("positions the checkpoint was trained for"),
    "--seq-length": _model("the training sequence length; not an inference limit"),
    "--tokenizer-type": _model("names the golden's tokenizer"),
    "--tokenizer-model": _model("names the golden's tokenizer file"),
    "--tiktoken-pattern": _model("the golden's tokenizer's split pattern"),
    "--load": _model("the checkpoint; a stand-in runs when it is absent"),
    "--use-checkpoint-args": _model(_CHECKPOINT),
    "--auto-detect-ckpt-format": _model(_CHECKPOINT),
    "--ckpt-format": _model(_CHECKPOINT),
    "--use-mcore-models": _model("Megatron-LM's model classes; the builtin engine has its own"),
    "--no-use-tokenizer-model-from-checkpoint-args": _model(_CHECKPOINT),
    "--dist-ckpt-strictness": _model(_CHECKPOINT),
    "--inference-ckpt-non-strict": _model(_CHECKPOINT),
    "--no-load-optim": _model("the optimizer state is never loaded for inference"),
    # --- GPU execution details: no-ops in the builtin engine
    "--attention-backend": _gpu("the attention kernel (flash); the same softmax(QKᵀ)V eagerly"),
    "--transformer-impl": _gpu("Transformer Engine / inference-optimized layers: kernel choice"),
    "--enable-cuda-graph": _gpu(_CUDA_GRAPHS),
    "--cuda-graph-impl": _gpu(_CUDA_GRAPHS),
    "--decode-only-cuda-graphs": _gpu(_CUDA_GRAPHS),
    "--use-flashinfer-fused-rope": _gpu("a fused RoPE kernel; the same rotation eagerly"),
    "--inference-dynamic-batching-sampling-backend": _gpu(
        "FlashInfer's sampling kernels; the engine's own sampler"
    ),
    "--inference-dynamic-batching-unified-memory-level": _gpu("CUDA unified memory for the KV"),
    "--inference-fuse-tp-communication": _gpu("fused TP collectives; the same sums"),
    "--sequence-parallel": _gpu("splits TP activations along the sequence; the same math"),
    "--inference-dynamic-batching-buffer-size-gb": _engine(
        f"Megatron's KV buffer in GB of GPU memory; the engine holds {KV_TOKENS_PER_RANK} "
        "tokens per rank instead (one request of the folders' --inference-max-seq-length), so "
        "that dp8 fits a CPU machine and the run does not depend on its memory",
        "--kv-cache-tokens",
        lambda _value: [str(KV_TOKENS_PER_RANK)],
    ),
    "--inference-dynamic-batching-async-sched-mode": _gpu(
        "overlaps scheduling with GPU compute; the same steps run one after another"
    ),
    "--max-tokens-to-oom": _gpu("Megatron's guard against GPU out-of-memory"),
    # --- not applicable to an inference run
    "--micro-batch-size": _na("a training micro-batch; the scheduler batches requests"),
    "--log-interval": _na("training log cadence"),
    "--log-memory-to-tensorboard": _na("TensorBoard logging"),
    "--log-num-zeros-in-grad": _na("gradients: training only"),
    "--log-timers-to-tensorboard": _na("TensorBoard logging"),
    "--log-validation-ppl-to-tensorboard": _na("validation perplexity: training only"),
    "--timing-log-level": _na("Megatron's timer verbosity"),
    "--inference-logging-step-interval": _na("Megatron's per-step log cadence"),
    "--inference-dynamic-batching-prefix-caching-coordinator-policy": FlagRule(
        Use.HARNESS,
        "DRIVER zmq: the coordinator's routing (generate --zmq): load_balanced (the default, "
        "fewest in flight), longest_prefix or first_prefix_block (prefix-aware)",
        blocker=_routing_blocker,
        choices=("load_balanced", *PREFIX_POLICIES),
    ),
    "--inference-dynamic-batching-prefix-caching-routing-alpha": FlagRule(
        Use.HARNESS, "DRIVER zmq: the prefix-aware routing's weight of prefix match vs load"
    ),
}


@dataclass(frozen=True)
class FlagReport:
    """A case's MODEL_ARGS sorted by the table: what reaches the engine, and what does not."""

    engine_args: dict[str, Any] = field(default_factory=dict)  # engine flag -> value
    origin: dict[str, str] = field(default_factory=dict)  # engine flag -> its MODEL_ARGS flag
    unused: tuple[tuple[str, Use, str], ...] = ()  # (flag, use, why): gpu-only, not-applicable
    blockers: tuple[str, ...] = ()  # "needs FEATURE (--flag: value)", one per missing feature

    def unused_lines(self) -> list[str]:
        """``--flag: why`` for each flag that is a no-op here, grouped by use."""
        return [f"{flag} ({use}: {why})" for flag, use, why in self.unused]


def rule_for(source: Path, flag: str) -> FlagRule:
    """The flag's row; a CaseError naming the file, the flag and the nearest known one."""
    rule = TABLE.get(flag)
    if rule is None:
        (nearest,) = difflib.get_close_matches(flag, list(TABLE), n=1, cutoff=0.0)
        raise CaseError(
            f"{source}: MODEL_ARGS.{flag}: not a known flag; did you mean {nearest!r}? "
            "(every flag is a row of src/logitsmatch/harness/cases/flag_table.py)"
        )
    return rule


def sort_flags(source: Path, model_args: Mapping[str, Any], shape: RunShape) -> FlagReport:
    """Check every flag against the table and sort them (raises CaseError for an unknown one)."""
    engine: dict[str, Any] = {}
    origin: dict[str, str] = {}
    unused: list[tuple[str, Use, str]] = []
    blockers: list[str] = []
    for flag, value in model_args.items():
        rule = rule_for(source, flag)
        if rule.choices and value not in rule.choices:
            (nearest,) = difflib.get_close_matches(str(value), rule.choices, n=1, cutoff=0.0)
            raise CaseError(
                f"{source}: MODEL_ARGS.{flag}: {value!r} is not one of {list(rule.choices)}; "
                f"did you mean {nearest!r}?"
            )
        feature = rule.blocker(value, shape) if rule.blocker else None
        if feature and not any(b.startswith(f"needs {feature} (") for b in blockers):
            blockers.append(f"needs {feature} ({flag}: {value})")
        if rule.use is Use.ENGINE and rule.engine_flag != "":
            name = rule.engine_flag or flag
            engine[name] = rule.words(value) if rule.words else value
            origin[name] = flag
            if shape.megatron and flag == "--top-n-logprobs" and value:
                # why: upstream returns the prompt's top-n too whenever --top-n-logprobs > 0.
                engine["--return-prompt-top-n-logprobs"] = True
                origin["--return-prompt-top-n-logprobs"] = flag
        elif rule.use in (Use.GPU_ONLY, Use.NOT_APPLICABLE):
            unused.append((flag, rule.use, rule.how))
    return FlagReport(engine, origin, tuple(unused), tuple(blockers))
