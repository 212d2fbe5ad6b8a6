"""The coordinator's bookkeeping, free of sockets: who is connected, which request is where.

Clients pick their own request ids, so two clients may both send "0". The coordinator gives
every routed request a fresh engine-side id and keeps a Route from it back to (client, id).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from logitsmatch.serving.prefix_routing import PrefixAffinity
from logitsmatch.serving.routing import Policy, ReplicaLoad


class RegistryError(Exception):
    """A request or registration the coordinator refuses; ``code`` goes into the error reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Replica:
    identity: bytes
    name: str
    last_seen: float
    requests: set[str] = field(default_factory=set)  # engine-side ids in flight
    prompt_bytes: int = 0  # of the requests in flight (fair_queue.prompt_size)


@dataclass
class ClientPeer:
    identity: bytes
    name: str
    requests: dict[str, str] = field(default_factory=dict)  # client id -> engine-side id
    operator: bool = False  # showed the operator secret: may pause, stop, shut down
    last_seen: float = 0.0


@dataclass(frozen=True)
class Route:
    client: bytes
    request_id: str  # the client's id
    replica: bytes
    engine_id: str
    keys: tuple[bytes, ...] = ()  # the prompt's block keys (prefix routing only)
    size: int = 0  # the prompt's bytes, counted against the replica's window


class Registry:
    """``prefix``: prefix-aware routing for requests whose prompt has block keys; the others
    (and every request when it is None) go by ``policy``."""

    def __init__(
        self,
        policy: Policy,
        prefix: PrefixAffinity | None = None,
        max_requests_per_client: int | None = None,
    ) -> None:
        self.policy = policy
        self.prefix = prefix
        self.max_requests_per_client = max_requests_per_client
        self.engines: dict[bytes, Replica] = {}  # registration order = policy's index order
        self.clients: dict[bytes, ClientPeer] = {}
        self.routes: dict[str, Route] = {}
        self._ids = itertools.count()

    def role(self, identity: bytes) -> str | None:
        """engine, operator, client, or None (not connected)."""
        if identity in self.engines:
            return "engine"
        peer = self.clients.get(identity)
        if peer is None:
            return None
        return "operator" if peer.operator else "client"

    def add_engine(self, identity: bytes, name: str, now: float) -> Replica:
        if any(r.name == name for r in self.engines.values()):
            raise RegistryError("duplicate_replica", f"a live replica is already named {name!r}")
        replica = self.engines[identity] = Replica(identity, name, now)
        return replica

    def add_client(
        self, identity: bytes, name: str, operator: bool = False, now: float = 0.0
    ) -> ClientPeer:
        peer = self.clients[identity] = ClientPeer(identity, name, operator=operator, last_seen=now)
        return peer

    def loads(self, replicas: Sequence[Replica] | None = None) -> list[ReplicaLoad]:
        """What a routing policy sees of ``replicas`` (default: every one, in order)."""
        chosen = self.engines.values() if replicas is None else replicas
        return [ReplicaLoad(r.name, len(r.requests)) for r in chosen]

    def check_new(
        self, client: bytes, request_id: str, waiting: bool = False, queued: int = 0
    ) -> None:
        """Refuse a duplicate id (in flight, or ``waiting`` in the coordinator's queue), a
        client past its cap (in flight plus ``queued``), and an empty pool."""
        peer = self.clients[client]
        if waiting or request_id in peer.requests:
            raise RegistryError(
                "duplicate_id", f"request id {request_id!r} is already in flight from this client"
            )
        cap = self.max_requests_per_client
        if cap is not None and len(peer.requests) + queued >= cap:
            raise RegistryError(
                "too_many_requests",
                f"this client already has {cap} requests in flight (the limit); wait for some",
            )
        if not self.engines:
            raise RegistryError("no_replica", "no engine replica is registered")

    def with_room(self, size: int, window: int | None, window_bytes: int | None) -> list[bytes]:
        """The replicas that can take a request of ``size`` prompt bytes now: fewer than
        ``window`` requests in flight, and ``window_bytes`` not passed (a replica with nothing
        in flight takes any one prompt). None: no bound."""
        return [
            r.identity
            for r in self.engines.values()
            if (window is None or len(r.requests) < window)
            and (window_bytes is None or not r.requests or r.prompt_bytes + size <= window_bytes)
        ]

    def assign(
        self,
        client: bytes,
        request_id: str,
        keys: Sequence[bytes] = (),
        size: int = 0,
        among: Sequence[bytes] | None = None,
    ) -> Route:
        """Pick a replica for a client's new request (``keys``: its prompt's block keys,
        ``size``: its bytes), from ``among`` (default: every replica, in registration order);
        refuses what ``check_new`` refuses."""
        self.check_new(client, request_id)
        peer = self.clients[client]
        replicas = (
            list(self.engines.values()) if among is None else [self.engines[i] for i in among]
        )
        if not replicas:
            raise RegistryError("no_replica", "no engine replica has room")
        loads = self.loads(replicas)
        index = self.prefix(loads, keys) if self.prefix and keys else self.policy(loads)
        if not isinstance(index, int) or not 0 <= index < len(replicas):
            raise RegistryError(
                "routing",
                f"routing policy returned {index!r}, expected an index in [0, {len(replicas)})",
            )
        replica = replicas[index]
        kept = tuple(keys) if self.prefix else ()
        route = Route(client, request_id, replica.identity, str(next(self._ids)), kept, size)
        self.routes[route.engine_id] = route
        peer.requests[request_id] = route.engine_id
        replica.requests.add(route.engine_id)
        replica.prompt_bytes += size
        return route

    def forget_prefix(self, identity: bytes, keys: Sequence[bytes]) -> None:
        """The replica reports it no longer holds ``keys``; prefix routing stops counting on
        them there, except for the keys of requests still in flight to it (those it will
        prefill, and so hold, again: the report may predate them)."""
        replica = self.engines.get(identity)
        if self.prefix is None or replica is None:
            return
        pending = {k for e in replica.requests if (r := self.routes.get(e)) for k in r.keys}
        self.prefix.forget(replica.name, [k for k in keys if k not in pending])

    def find(self, client: bytes, request_id: str) -> Route | None:
        peer = self.clients.get(client)
        engine_id = peer.requests.get(request_id) if peer else None
        return self.routes.get(engine_id) if engine_id is not None else None

    def lookup(self, engine_id: str) -> Route | None:
        return self.routes.get(engine_id)

    def complete(self, engine_id: str) -> Route | None:
        """Forget a finished request; None if unknown (its client left, or a stray reply)."""
        route = self.routes.pop(engine_id, None)
        if route is None:
            return None
        replica = self.engines.get(route.replica)
        if replica is not None:
            replica.requests.discard(engine_id)
            replica.prompt_bytes -= route.size
        peer = self.clients.get(route.client)
        if peer is not None:
            peer.requests.pop(route.request_id, None)
        return route

    def remove_engine(self, identity: bytes) -> tuple[Replica, list[Route]]:
        """Drop a replica; returns it and the routes of the requests it had in flight."""
        replica = self.engines.pop(identity)
        routes = [
            r
            for r in (self.complete(e) for e in sorted(replica.requests, key=int))
            if r is not None
        ]
        return replica, routes

    def remove_client(self, identity: bytes) -> list[Route]:
        """Drop a client; returns the routes of its requests still in flight (to abort)."""
        peer = self.clients.pop(identity)
        return [r for r in (self.complete(e) for e in list(peer.requests.values())) if r]

    def seen(self, identity: bytes, now: float) -> None:
        peer = self.engines.get(identity) or self.clients.get(identity)
        if peer is not None:
            peer.last_seen = now

    def expired(self, now: float, timeout_s: float) -> list[bytes]:
        """The engines silent for longer than ``timeout_s``."""
        return [i for i, r in self.engines.items() if now - r.last_seen > timeout_s]

    def vanished(self, now: float, timeout_s: float) -> list[bytes]:
        """The clients silent for longer than ``timeout_s`` (a client heartbeats while it
        waits; one that left without bye is forgotten, not kept forever)."""
        return [i for i, c in self.clients.items() if now - c.last_seen > timeout_s]
