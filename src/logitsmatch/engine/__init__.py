"""The engine's public face: ``EngineOptions`` -> ``build_engine`` -> ``LLMEngine``.

    from logitsmatch.engine import EngineOptions, SamplingParams, build_engine
    engine = build_engine(EngineOptions(model="tiny", batch_invariant=True))
    records = engine.generate(["Hello"], SamplingParams(num_tokens_to_generate=8))

Names load lazily: importing ``logitsmatch.engine.request`` (plain Python) must not import
torch, so serving's model-free workers and the harness start without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logitsmatch.engine.build import build_engine, resolve_model
    from logitsmatch.engine.engine import LLMEngine
    from logitsmatch.engine.layout import Layout, LayoutError
    from logitsmatch.engine.options import EngineOptions
    from logitsmatch.engine.request import RequestError, SamplingParams

_EXPORTS = {
    "EngineOptions": "logitsmatch.engine.options",
    "Layout": "logitsmatch.engine.layout",
    "LayoutError": "logitsmatch.engine.layout",
    "LLMEngine": "logitsmatch.engine.engine",
    "RequestError": "logitsmatch.engine.request",
    "SamplingParams": "logitsmatch.engine.request",
    "build_engine": "logitsmatch.engine.build",
    "resolve_model": "logitsmatch.engine.build",
}
__all__ = [
    "EngineOptions",
    "LLMEngine",
    "Layout",
    "LayoutError",
    "RequestError",
    "SamplingParams",
    "build_engine",
    "resolve_model",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'logitsmatch.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
