"""Which role a peer may take: per-service secrets bound to the engine and operator roles.

Anything on the host can reach a loopback coordinator, so the role a peer *says* in
``connect`` proves nothing. An ``engine`` is sent other clients' prompts and its replies reach
them as real tokens, so it must show the service's engine secret; an ``operator`` may pause,
unpause, stop and shut the service down, so it must show the operator secret; a plain
``client`` submits, aborts its own requests and asks for status. ``serve`` and ``generate --zmq``
make fresh secrets for each service and hand them to their own ranks and driver through the
environment (``ENGINE_ENV``, ``OPERATOR_ENV``), never on a command line, which any local user
can read. A secret is compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets as random
from collections.abc import Mapping
from dataclasses import dataclass

ENGINE_ENV = "LOGITSMATCH_ENGINE_SECRET"
OPERATOR_ENV = "LOGITSMATCH_OPERATOR_SECRET"
MIN_CHARS = 32  # 128 bits as hex, at least
MAX_CHARS = 256  # what the protocol accepts in a connect


@dataclass(frozen=True, repr=False)
class ServiceSecrets:
    """The engine and operator secrets of one service (``repr`` hides them)."""

    engine: str
    operator: str

    def __post_init__(self) -> None:
        for name in ("engine", "operator"):
            value = getattr(self, name)
            if not isinstance(value, str) or not MIN_CHARS <= len(value) <= MAX_CHARS:
                raise ValueError(
                    f"ServiceSecrets.{name}: expected {MIN_CHARS} to {MAX_CHARS} characters"
                )
        if hmac.compare_digest(self.engine, self.operator):
            raise ValueError("ServiceSecrets: the engine and operator secrets must differ")

    def __repr__(self) -> str:
        return "ServiceSecrets(<hidden>)"

    @classmethod
    def generate(cls) -> ServiceSecrets:
        return cls(random.token_hex(32), random.token_hex(32))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServiceSecrets | None:
        """The secrets ``environ`` carries (None when it carries neither)."""
        engine, operator = environ.get(ENGINE_ENV), environ.get(OPERATOR_ENV)
        if engine is None and operator is None:
            return None
        if engine is None or operator is None:
            raise ValueError(f"give both {ENGINE_ENV} and {OPERATOR_ENV}, or neither")
        return cls(engine, operator)

    def env(self) -> dict[str, str]:
        """The environment entries that hand these secrets to a child process."""
        return {ENGINE_ENV: self.engine, OPERATOR_ENV: self.operator}

    def admits(self, role: str, secret: str | None) -> bool:
        """Whether a peer that shows ``secret`` may take ``role``."""
        if role == "client":
            return True
        expected = {"engine": self.engine, "operator": self.operator}.get(role)
        return (
            expected is not None
            and secret is not None
            and hmac.compare_digest(secret.encode(), expected.encode())
        )
