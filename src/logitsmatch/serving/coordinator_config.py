"""The coordinator's settings: where to bind, how to route, how long to trust silence."""

from __future__ import annotations

from dataclasses import dataclass, field

from logitsmatch.serving.limits import DEFAULT_LIMITS, Limits
from logitsmatch.serving.prefix_routing import PrefixAffinity, PromptKeys
from logitsmatch.serving.roles import ServiceSecrets
from logitsmatch.serving.routing import POLICIES, Policy
from logitsmatch.serving.security import CurveServerKeys, check_bind
from logitsmatch.serving.timeouts import HEARTBEAT_S, PEER_TIMEOUT_S

# An engine's concurrent requests by default (the coordinator's and the engines' --max-requests)
REPLICA_WINDOW = 32
# why 4 MB: a few of the largest prompts a frame may carry (1 MB), so another client's request
# waits behind at most a few seconds of tokenizing, never behind a whole backlog
REPLICA_WINDOW_BYTES = 4 << 20


@dataclass(frozen=True)
class CoordinatorConfig:
    """Where to bind and how long to trust a silent replica.

    ``heartbeat_s``: how often engines are pinged (their own deadline must be longer);
    ``engine_timeout_s``: a replica silent this long is declared dead;
    ``shutdown_grace_s``: how long a shutdown waits for engines to hand back their requests;
    ``prefix`` and ``prompt_keys`` (both or neither): prefix-aware routing, and how a prompt's
    block keys are computed (the engines' tokenizer and block size); ``secrets``: what engines
    and operators must show (fresh ones unless given: ``roles.py``); ``client_timeout_s``: a
    client silent this long (it heartbeats while connected) is forgotten with its requests;
    ``replica_window`` / ``replica_window_bytes``: the most requests / prompt bytes one replica
    is sent at once (an engine's concurrent requests); the rest wait in the coordinator and go
    out fairly across clients (``fair_queue.py``). None: no bound.
    """

    host: str = "127.0.0.1"
    port: int = 0
    policy: str | Policy = "least_outstanding"
    heartbeat_s: float = HEARTBEAT_S
    engine_timeout_s: float = PEER_TIMEOUT_S
    shutdown_grace_s: float = 5.0
    insecure: bool = False
    curve: CurveServerKeys | None = None
    limits: Limits = field(default=DEFAULT_LIMITS)
    name: str = "coordinator"
    prefix: PrefixAffinity | None = None
    prompt_keys: PromptKeys | None = None
    secrets: ServiceSecrets = field(default_factory=ServiceSecrets.generate)
    client_timeout_s: float = PEER_TIMEOUT_S  # a client silent this long is forgotten
    replica_window: int | None = REPLICA_WINDOW
    replica_window_bytes: int | None = REPLICA_WINDOW_BYTES

    def __post_init__(self) -> None:
        if (self.prefix is None) != (self.prompt_keys is None):
            raise ValueError("CoordinatorConfig: prefix routing needs both prefix and prompt_keys")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"CoordinatorConfig.port must be in [0, 65535], got {self.port!r}")
        for name in ("heartbeat_s", "engine_timeout_s", "shutdown_grace_s", "client_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"CoordinatorConfig.{name} must be > 0, got {value!r}")
        if self.engine_timeout_s <= self.heartbeat_s:
            raise ValueError(
                f"CoordinatorConfig.engine_timeout_s ({self.engine_timeout_s}) must "
                f"exceed heartbeat_s ({self.heartbeat_s})"
            )
        for name in ("replica_window", "replica_window_bytes"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"CoordinatorConfig.{name} must be a positive int, got {value!r}")
        if not callable(self.policy) and self.policy not in POLICIES:
            raise ValueError(
                f"CoordinatorConfig.policy {self.policy!r} is unknown; use one of "
                f"{sorted(POLICIES)} or a callable"
            )
        check_bind(self.host, self.curve, self.insecure)
