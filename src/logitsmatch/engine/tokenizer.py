"""Tokenizer: a ``tokenizers`` byte-level BPE built from a GGUF's own vocabulary and merges."""

from __future__ import annotations

from pathlib import Path

from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

_CONTROL = 3
_USER_DEFINED = 4


def _pre_tokenizer(pre: str) -> pre_tokenizers.PreTokenizer:
    """The split rule the merges were learned with, by GGUF ``tokenizer.ggml.pre``.

    ``smollm``: each digit on its own, then GPT-2's split (as SmolLM2's tokenizer.json and
    llama.cpp do). Anything else gets GPT-2's split.
    """
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre == "smollm":
        return pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
                byte_level,
            ]
        )
    return byte_level


def _merge_pair(merge: str) -> tuple[str, str]:
    """``"left right"`` as ``(left, right)``, split at the first space as BPE expects."""
    left, sep, right = merge.partition(" ")
    if not sep:
        # the TypeError tokenizers' BPE raises for a merge that is not a pair, said plainly
        raise TypeError(f"GGUF merge {merge!r} is not a 'left right' pair")
    return left, right


def tokenizer_json_from_gguf_fields(
    *, tokens: list[str], token_types: list[int], merges: list[str], model: str, pre: str
) -> str:
    """Build the tokenizer a GGUF describes and return it as ``tokenizer.json`` text."""
    if model != "gpt2":
        raise ValueError(
            f"GGUF tokenizer model {model!r} is not supported (only byte-level 'gpt2')"
        )
    vocab = {token: index for index, token in enumerate(tokens)}
    pairs = [_merge_pair(m) for m in merges]
    tok = HFTokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = _pre_tokenizer(pre)
    tok.decoder = decoders.ByteLevel()
    types = token_types or [0] * len(tokens)
    special = [
        AddedToken(t, special=True, normalized=False)
        for t, kind in zip(tokens, types, strict=True)
        if kind == _CONTROL
    ]
    user = [
        AddedToken(t, special=False, normalized=False)
        for t, kind in zip(tokens, types, strict=True)
        if kind == _USER_DEFINED
    ]
    tok.add_special_tokens(special)
    tok.add_tokens(user)
    return tok.to_str()


class Tokenizer:
    """Encode/decode without BOS/EOS added, as Megatron's inference tokenizer does by default."""

    def __init__(
        self, backend: HFTokenizer, eos_token_id: int | None = None, bos_token_id: int | None = None
    ) -> None:
        self._tok = backend
        self.eos_token_id = eos_token_id
        self.bos_token_id = bos_token_id

    @classmethod
    def from_file(
        cls, path: str | Path, eos_token_id: int | None = None, bos_token_id: int | None = None
    ) -> Tokenizer:
        return cls(HFTokenizer.from_file(str(path)), eos_token_id, bos_token_id)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=False)
