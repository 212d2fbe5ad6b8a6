"""Convert a GGUF file, once, into a cache folder the ranks load from.

The folder holds ``config.json`` (a ModelConfig), ``tokenizer.json`` (a ``tokenizers`` file)
and ``model.safetensors`` (fp32, HF tensor names). Why a cache: parsing a GGUF's metadata
with the ``gguf`` package takes ~4.6 s for SmolLM2 and dequantizing it ~1.8 s; eight pipeline
ranks doing that at once on two cores would take a minute. The safetensors file is memory-mapped
and each rank reads only the tensors (and tensor slices) it needs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from logitsmatch.engine.config import ModelConfig

CACHE_FORMAT = 1

# GGUF tensor name -> HF name ({i} = layer index).
_LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


class GGUFError(ValueError):
    """A GGUF file that cannot be read; the message names the file and the problem."""


def cache_root() -> Path:
    env = os.environ.get("LOGITSMATCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "logitsmatch"


def cache_dir_for(gguf_path: Path) -> Path:
    st = gguf_path.stat()
    key = f"{gguf_path.stem}-{st.st_size}-{st.st_mtime_ns}-v{CACHE_FORMAT}"
    return cache_root() / "gguf" / key


def ensure_converted(gguf_path: str | os.PathLike[str]) -> Path:
    """Return the cache folder for ``gguf_path``, converting the file first if needed.

    Safe when several processes race: each converts into a private temp folder and the first
    rename wins.
    """
    path = Path(gguf_path)
    if not path.is_file():
        raise GGUFError(f"GGUF file not found: {path}")
    target = cache_dir_for(path)
    if (target / "model.safetensors").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        _convert(path, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _read(path: Path) -> Any:
    import gguf

    try:
        return gguf.GGUFReader(path)
    except Exception as exc:  # the reader raises bare ValueError/IndexError on bad bytes
        raise GGUFError(f"{path}: not a readable GGUF file ({type(exc).__name__}: {exc})") from exc


def _field(reader: Any, key: str, path: Path, default: Any = None) -> Any:
    field = reader.fields.get(key)
    if field is None:
        if default is not None:
            return default
        raise GGUFError(f"{path}: missing metadata key {key!r}")
    return field.contents()


def _config(reader: Any, path: Path) -> ModelConfig:
    arch = _field(reader, "general.architecture", path)
    if arch != "llama":
        raise GGUFError(f"{path}: architecture {arch!r} is not supported (only 'llama')")
    names = {t.name for t in reader.tensors}
    return ModelConfig(
        vocab_size=len(reader.fields["tokenizer.ggml.tokens"].data),
        hidden_size=int(_field(reader, "llama.embedding_length", path)),
        num_layers=int(_field(reader, "llama.block_count", path)),
        num_heads=int(_field(reader, "llama.attention.head_count", path)),
        num_kv_heads=int(
            _field(
                reader,
                "llama.attention.head_count_kv",
                path,
                _field(reader, "llama.attention.head_count", path),
            )
        ),
        ffn_hidden_size=int(_field(reader, "llama.feed_forward_length", path)),
        max_seq_len=int(_field(reader, "llama.context_length", path, 2048)),
        rope_theta=float(_field(reader, "llama.rope.freq_base", path, 10000.0)),
        norm_eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon", path)),
        tie_embeddings="output.weight" not in names,
        bos_token_id=_optional_int(reader, "tokenizer.ggml.bos_token_id"),
        eos_token_id=_optional_int(reader, "tokenizer.ggml.eos_token_id"),
    )


def _optional_int(reader: Any, key: str) -> int | None:
    field = reader.fields.get(key)
    return None if field is None else int(field.contents())


def _hf_name(gguf_name: str) -> str:
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    parts = gguf_name.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[2] in _LAYER_NAMES:
        return f"model.layers.{parts[1]}.{_LAYER_NAMES[parts[2]]}.{parts[3]}"
    raise GGUFError(f"unexpected tensor {gguf_name!r}")


def _unpermute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's Q/K row permutation (interleaved rotary pairs -> HF's rotate_half halves).

    weight: [n_head * head_dim, hidden]; within a head, GGUF stores rows as (pair, 2) and HF as
    (2, pair).
    """
    rows = weight.shape[0]
    w = weight.reshape(n_head, rows // n_head // 2, 2, *weight.shape[1:])
    unpermuted: np.ndarray = w.swapaxes(1, 2).reshape(weight.shape)  # numpy types swapaxes Any
    return unpermuted


def _tensors(reader: Any, config: ModelConfig, path: Path) -> dict[str, np.ndarray]:
    from gguf.quants import dequantize

    out: dict[str, np.ndarray] = {}
    for tensor in reader.tensors:
        name = _hf_name(tensor.name)
        try:
            array = dequantize(tensor.data, tensor.tensor_type)
        except Exception as exc:
            raise GGUFError(
                f"{path}: cannot dequantize {tensor.name} ({tensor.tensor_type.name}): {exc}"
            ) from exc
        array = np.ascontiguousarray(array, dtype=np.float32)
        if name.endswith("q_proj.weight"):
            array = _unpermute(array, config.num_heads)
        elif name.endswith("k_proj.weight"):
            array = _unpermute(array, config.num_kv_heads)
        out[name] = array
    return out


def _convert(path: Path, dest: Path) -> None:
    from safetensors.numpy import save_file

    from logitsmatch.engine.tokenizer import tokenizer_json_from_gguf_fields

    reader = _read(path)
    if "tokenizer.ggml.tokens" not in reader.fields:
        raise GGUFError(f"{path}: missing metadata key 'tokenizer.ggml.tokens'")
    config = _config(reader, path)
    tensors = _tensors(reader, config, path)
    expected = 3 + 9 * config.num_layers - (1 if config.tie_embeddings else 0)
    if len(tensors) != expected:
        raise GGUFError(
            f"{path}: expected {expected} tensors for {config.num_layers} layers, "
            f"found {len(tensors)} (truncated file?)"
        )
    tokenizer_json = tokenizer_json_from_gguf_fields(
        tokens=[str(t) for t in _field(reader, "tokenizer.ggml.tokens", path)],
        token_types=[int(t) for t in _field(reader, "tokenizer.ggml.token_type", path, [])],
        merges=[str(m) for m in _field(reader, "tokenizer.ggml.merges", path)],
        model=str(_field(reader, "tokenizer.ggml.model", path)),
        pre=str(_field(reader, "tokenizer.ggml.pre", path, "default")),
    )
    chat_template = reader.fields.get("tokenizer.chat_template")
    meta = {
        "format": CACHE_FORMAT,
        "source": str(path),
        "chat_template": None if chat_template is None else chat_template.contents(),
    }
    save_file(tensors, str(dest / "model.safetensors"))
    (dest / "config.json").write_text(json.dumps(config.to_dict(), indent=1))
    (dest / "tokenizer.json").write_text(tokenizer_json)
    (dest / "meta.json").write_text(json.dumps(meta, indent=1))
