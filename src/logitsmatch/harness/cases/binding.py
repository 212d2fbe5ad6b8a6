"""Which model a case runs, and which model its goldens were recorded with: the model binding.

A case names its model with ``--model`` (a preset, a .gguf file or an HF folder), or, as
Megatron-LM's folders do, describes it by flags: the architecture (``--num-layers``,
``--hidden-size``, ``--num-attention-heads``, ...), the tokenizer (``--tokenizer-type``,
``--tokenizer-model``) and the checkpoint (``--load ${CHECKPOINT_LOAD_PATH}/...``).

When that checkpoint is absent (always, on a machine without Megatron's test data), the run
uses a *stand-in*: the seeded synthetic preset of exactly that architecture, with SmolLM2's
tokenizer in place of the named one. The binding says so in words (``run_model``), and names
what the folder's own goldens were recorded with (``golden_model``): a golden recorded with
another model is never compared as if it were this run's (the verdict is "not comparable").
When ``--load`` points at something that exists, the builtin engine runs it if it can load it
(a .gguf file, or an HF folder: config.json + *.safetensors + tokenizer.json), and the case is
refused naming what it cannot load otherwise.

Plain Python (no torch): the preset shapes come from ``logitsmatch.engine.presets``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logitsmatch.engine.presets import SYNTHETIC, synthetic_shape
from logitsmatch.harness.cases.fields import VAR_RE, CaseError

ARCH_FLAGS = ("--num-layers", "--hidden-size", "--num-attention-heads")
DEFAULT_MODEL = "smollm2-135m"  # logitsmatch generate's default
DEFAULT_SYNTHETIC_SEED = 1234
STAND_IN_TOKENIZER = "smollm2-135m's tokenizer (49152 ids)"
_HF_FILES = ("config.json", "tokenizer.json")


@dataclass(frozen=True)
class ModelBinding:
    """What a case runs (``engine_args`` for the engine, ``run_model`` in words) and what its
    own goldens were recorded with (``golden_model``; None: our goldens say it themselves)."""

    run_model: str
    engine_args: dict[str, Any] = field(default_factory=dict)
    golden_model: str | None = None
    stand_in: bool = False

    def comparable_with(self, recorded: str | None) -> bool:
        """Whether a golden recorded with ``recorded`` (None: unknown) compares with this run."""
        return recorded is None or recorded == self.run_model


def bind_model(
    source: Path, model_args: Mapping[str, Any], environ: Mapping[str, str]
) -> ModelBinding:
    """The binding of a case's MODEL_ARGS; ``environ`` expands ``--load``'s ``${VAR}``s."""
    arch = [flag for flag in ARCH_FLAGS if flag in model_args]
    if "--model" in model_args:
        if arch:
            raise CaseError(
                f"{source}: MODEL_ARGS.{arch[0]}: the model is already named by --model "
                f"{model_args['--model']!r}; give --model or the architecture flags, not both"
            )
        model = str(model_args["--model"])
        if "--synthetic-seed" in model_args:
            model += f" (synthetic seed {model_args['--synthetic-seed']})"
        return ModelBinding(model, _seeded(model_args, model_args["--model"]))
    if not arch:
        return ModelBinding(DEFAULT_MODEL, _seeded(model_args, None))
    missing = [flag for flag in ARCH_FLAGS if flag not in model_args]
    if missing:
        raise CaseError(
            f"{source}: MODEL_ARGS.{missing[0]}: missing; a model described by flags needs "
            + ", ".join(ARCH_FLAGS)
        )
    golden = _golden_model(model_args)
    loaded = _checkpoint(source, model_args, environ)
    if loaded is not None:
        # why: the folder's own checkpoint is what its goldens were recorded with.
        return ModelBinding(golden, _seeded(model_args, loaded), golden_model=golden)
    return _stand_in(source, model_args, golden)


def _golden_model(args: Mapping[str, Any]) -> str:
    load = args.get("--load", "no checkpoint (--load)")
    tokenizer = " ".join(
        str(args[f]) for f in ("--tokenizer-type", "--tokenizer-model") if f in args
    )
    return f"checkpoint {load} with tokenizer {tokenizer or 'unnamed'}"


def _checkpoint(source: Path, args: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    """The loadable model at ``--load``, None when it is absent; CaseError when it cannot be
    loaded."""
    load = args.get("--load")
    if not isinstance(load, str):
        return None
    if any(name not in environ for name in VAR_RE.findall(load)):
        return None  # e.g. ${CHECKPOINT_LOAD_PATH} unset: no checkpoint here
    path = Path(VAR_RE.sub(lambda m: environ[m.group(1)], load))
    if not path.exists():
        return None
    if path.is_file() and path.suffix == ".gguf":
        return str(path)
    hf = path.is_dir() and all((path / f).is_file() for f in _HF_FILES)
    if hf and any(path.glob("*.safetensors")):
        return str(path)
    there = sorted(p.name for p in path.iterdir())[:8] if path.is_dir() else [path.name]
    raise CaseError(
        f"{source}: MODEL_ARGS.--load: {path} exists, but the builtin engine loads only a "
        ".gguf file or an HF folder (config.json, *.safetensors, tokenizer.json); it cannot "
        f"load {', '.join(there) or 'an empty folder'} (a Megatron torch_dist checkpoint: "
        "convert it to HF safetensors, or unset CHECKPOINT_LOAD_PATH to run the stand-in)"
    )


def _stand_in(source: Path, args: Mapping[str, Any], golden: str) -> ModelBinding:
    layers, hidden, heads = (_int(source, args, flag) for flag in ARCH_FLAGS)
    kv_heads = _int(source, args, "--num-query-groups") if "--num-query-groups" in args else heads
    ffn = _int(source, args, "--ffn-hidden-size") if "--ffn-hidden-size" in args else 4 * hidden
    wanted = (layers, hidden, heads, kv_heads, ffn)
    preset = next((name for name in SYNTHETIC if synthetic_shape(name) == wanted), None)
    if preset is None:
        shapes = "; ".join(f"{n}: {synthetic_shape(n)}" for n in SYNTHETIC)
        raise CaseError(
            f"{source}: MODEL_ARGS: no stand-in model has the architecture (layers, hidden, "
            f"heads, KV heads, FFN) = {wanted}; the presets are {shapes} "
            "(add one to src/logitsmatch/engine/presets.py)"
        )
    seed = args.get("--synthetic-seed", DEFAULT_SYNTHETIC_SEED)
    tokenizer = args.get("--tokenizer-type", "the named tokenizer")
    words = (
        f"stand-in {preset} ({layers} layers, hidden {hidden}, {heads} heads, FFN {ffn}; "
        f"seeded weights, seed {seed}) with {STAND_IN_TOKENIZER} for {tokenizer}"
    )
    return ModelBinding(words, _seeded(args, preset), golden_model=golden, stand_in=True)


def _seeded(args: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """The engine's model flags: ``--model`` and the case's ``--synthetic-seed``, if any."""
    out = {"--model": model} if model is not None else {}
    if "--synthetic-seed" in args:
        out["--synthetic-seed"] = args["--synthetic-seed"]
    return out


def _int(source: Path, args: Mapping[str, Any], flag: str) -> int:
    value = args[flag]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CaseError(f"{source}: MODEL_ARGS.{flag}: expected an integer >= 1, got {value!r}")
    return value
