"""The service's public face: a coordinator that routes requests to engine replicas over ZeroMQ.

    from logitsmatch.serving import Client, start_service
    async with Client(address) as client:
        record = await (await client.add_request("Hello", SamplingParams()))

``start_service`` starts a coordinator plus the engine ranks (engine/launch.py); ``run_worker``
serves an engine as one replica; ``run_driver`` is the Megatron-style driver (bursts of requests,
the output JSON back). Names load lazily, so importing a submodule loads only what it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logitsmatch.serving.client import Client
    from logitsmatch.serving.coordinator_config import CoordinatorConfig
    from logitsmatch.serving.driver import run_driver
    from logitsmatch.serving.launch import start_service
    from logitsmatch.serving.limits import Limits
    from logitsmatch.serving.worker import run_worker

_EXPORTS = {
    "Client": "logitsmatch.serving.client",
    "CoordinatorConfig": "logitsmatch.serving.coordinator_config",
    "Limits": "logitsmatch.serving.limits",
    "run_driver": "logitsmatch.serving.driver",
    "run_worker": "logitsmatch.serving.worker",
    "start_service": "logitsmatch.serving.launch",
}
__all__ = ["Client", "CoordinatorConfig", "Limits", "run_driver", "run_worker", "start_service"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'logitsmatch.serving' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
