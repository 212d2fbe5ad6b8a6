"""The coordinator: one ROUTER socket between clients and data-parallel engine replicas.

Clients and engines (the entry rank of each replica) connect and say who they are. Each
submit goes to a replica chosen by the routing policy, under a fresh engine-side id; replies
go back to the client that sent the request, under its own id. A replica that misses its
heartbeat deadline, disconnects, or says bye is dropped, and each request it had in flight
gets an error reply naming it. Nothing a peer sends can crash the loop: bad frames get an
error reply (and a log line). Roles are bound to secrets (``roles.py``): only a peer that
shows the engine secret is sent prompts, and only one that shows the operator secret may
pause, stop or shut down.

Run alone: ``python -m logitsmatch.serving.coordinator --port 0 --address-file F``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import zmq

from logitsmatch.serving.coordinator_config import REPLICA_WINDOW, CoordinatorConfig
from logitsmatch.serving.errors import ProtocolError
from logitsmatch.serving.fair_queue import FairQueue, Waiting, prompt_size
from logitsmatch.serving.log_limit import RateLimitedLog
from logitsmatch.serving.prefix_routing import DEFAULT_ALPHA, PREFIX_POLICIES, PrefixAffinity
from logitsmatch.serving.protocol import (
    PROTOCOL_VERSION,
    Abort,
    Ack,
    Bye,
    Connect,
    Control,
    Error,
    Forgotten,
    Heartbeat,
    Message,
    Partial,
    Reply,
    Status,
    Submit,
    decode,
    encode,
)
from logitsmatch.serving.registry import Registry, RegistryError, Route
from logitsmatch.serving.roles import ENGINE_ENV, OPERATOR_ENV, ServiceSecrets
from logitsmatch.serving.routing import POLICIES, make_policy
from logitsmatch.serving.security import CurveServerKeys, admit_engine_key, secure_server
from logitsmatch.serving.timeouts import HEARTBEAT_S, PEER_TIMEOUT_S

log = logging.getLogger(__name__)
ERROR_TEXT_CHARS = 256  # of a bad-frame error reply's text
MAX_BATCH = 256  # messages handled between two ticks, so heartbeats run even under a flood


class Coordinator:
    """Bind on construction (``address`` then holds the real port); ``serve()`` runs the loop."""

    def __init__(self, config: CoordinatorConfig | None = None) -> None:
        config = self.config = config or CoordinatorConfig()
        self.registry = Registry(
            make_policy(config.policy), config.prefix, config.limits.max_requests_per_client
        )
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        # why: a send to a peer that is gone must fail (EHOSTUNREACH) so we notice it died,
        # and replies must never be dropped silently at a high-water mark.
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # why a bound: a peer that never reads must not grow our queue without end; past it a
        # send fails (EAGAIN, never a silent drop) and the peer is dropped as unreachable
        self.sock.setsockopt(zmq.SNDHWM, config.limits.max_queued_per_peer)
        # why a bound: a peer that sends faster than frames are decoded must wait (ZMQ then
        # stops reading its connection: TCP back-pressure, nothing dropped), not fill memory
        self.sock.setsockopt(zmq.RCVHWM, config.limits.max_inbound_per_peer)
        self.sock.setsockopt(zmq.MAXMSGSIZE, 2 * config.limits.max_frame_bytes)
        self.auth = None
        try:
            self.auth = secure_server(self.sock, self.ctx, config.curve)
            self.address: str = self._bind(config.host, config.port)
        except BaseException:
            self.close()
            raise
        self.port = int(self.address.rsplit(":", 1)[1])
        self.paused = self.stopped = False
        self._shutdown_at: float | None = None
        self._finished = False
        self._unreachable: set[bytes] = set()
        self._next_ping = 0.0
        self._bad_frames = RateLimitedLog(log)  # what peers send wrong
        self._peer_log = RateLimitedLog(log)  # what happens to peers (unreachable, forgotten)
        self.waiting = FairQueue()  # requests no replica has room for yet

    def _bind(self, host: str, port: int) -> str:
        if ":" in host:
            self.sock.setsockopt(zmq.IPV6, 1)
            host = f"[{host}]"
        self.sock.bind(f"tcp://{host}:{port or '*'}")
        endpoint = cast(bytes, self.sock.getsockopt(zmq.LAST_ENDPOINT))  # a bytes option
        return endpoint.decode()

    # ---- loop ------------------------------------------------------------------------------

    def serve(self, should_stop: Callable[[], bool] | None = None) -> None:
        """Run until a client's shutdown (or ``should_stop()``) has been carried out."""
        try:
            while not self._finished:
                if self.sock.poll(self._poll_ms(), zmq.POLLIN):
                    for _ in range(MAX_BATCH):
                        try:
                            frames = self.sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._handle_safely(frames)
                if should_stop is not None and should_stop():
                    self.begin_shutdown("stop requested (signal)")
                self._tick(time.monotonic())
        finally:
            self.close()

    def begin_shutdown(self, why: str) -> None:
        """Tell every engine to exit; the loop ends once they left or the grace period ran out."""
        if self._shutdown_at is not None:
            return
        log.info("coordinator shutting down: %s", why)
        self.stopped = True
        self._fail_waiting("stopped", f"the service is shutting down ({why})")
        self._shutdown_at = time.monotonic() + self.config.shutdown_grace_s
        for identity in list(self.registry.engines):
            self._send(identity, Control("shutdown"))

    def close(self) -> None:
        """Release the socket and the port; idempotent."""
        if self.sock.closed:
            return
        self.sock.close(linger=200)  # why: flush the last error replies, but never hang
        if self.auth is not None:
            self.auth.stop()
        self.ctx.term()

    def _poll_ms(self) -> int:
        # why: wake at least every 50 ms so a signal or a deadline is acted on promptly
        return max(0, min(50, int((self._next_ping - time.monotonic()) * 1000) + 1))

    def _tick(self, now: float) -> None:
        if now >= self._next_ping:
            self._next_ping = now + self.config.heartbeat_s
            for identity in list(self.registry.engines):
                self._send(identity, Heartbeat())
        timeout = self.config.engine_timeout_s
        for identity in self.registry.expired(now, timeout):
            self._drop_engine(identity, f"sent nothing for {timeout} s (heartbeat deadline)")
        for identity in self.registry.vanished(now, self.config.client_timeout_s):
            self._peer_log.note(
                f"client {identity.hex()} sent nothing for {self.config.client_timeout_s} s; "
                "forgotten",
                now,
                logging.INFO,
            )
            self._drop_client(identity)
        self._bad_frames.flush(now)
        self._peer_log.flush(now)
        self._reap_unreachable()
        if self._shutdown_at is not None and (not self.registry.engines or now > self._shutdown_at):
            for identity in list(self.registry.engines):
                self._drop_engine(identity, "did not leave before the shutdown grace period ended")
            for identity in list(self.registry.clients):  # why: they need not wait for a timeout
                self._send(identity, Bye())
            self._finished = True

    # ---- dispatch --------------------------------------------------------------------------

    def _handle_safely(self, frames: list[bytes]) -> None:
        try:
            self._handle(frames)
        except Exception:  # why: a bug triggered by one message must not take the service down
            log.exception("coordinator: unexpected failure handling a message; dropped it")
        self._reap_unreachable()

    def _handle(self, frames: list[bytes]) -> None:
        identity = frames[0]
        if len(frames) != 2:
            self._refuse(
                identity,
                ProtocolError("frames", len(frames) - 1, "expected exactly 1 payload frame"),
            )
            return
        try:
            msg = decode(frames[1], self.config.limits)
        except ProtocolError as e:
            self._refuse(identity, e)
            return
        role = self.registry.role(identity)
        self.registry.seen(identity, time.monotonic())
        if isinstance(msg, Connect):
            self._on_connect(identity, msg, role)
        elif role is None:
            self._send(
                identity,
                Error(
                    "not_connected",
                    f"send 'connect' before {msg.KIND!r}",
                    getattr(msg, "request_id", None),
                ),
            )
        elif role == "engine":
            self._on_engine(identity, msg)
        else:
            self._on_client(identity, msg)

    def _refuse(self, identity: bytes, e: ProtocolError) -> None:
        self._bad_frames.note(f"coordinator: bad frame from peer {identity.hex()}: {e}")
        # why short: a peer that never reads gets every reply queued (up to the send bound),
        # so a reply must not be an amplifier of what it sent
        self._send(identity, Error("bad_frame", str(e)[:ERROR_TEXT_CHARS], e.request_id))

    def _on_connect(self, identity: bytes, msg: Connect, role: str | None) -> None:
        if msg.version != PROTOCOL_VERSION:
            self._send(
                identity,
                Error(
                    "version",
                    f"peer speaks protocol version {msg.version}; "
                    f"this coordinator speaks {PROTOCOL_VERSION}",
                ),
            )
            return
        if role is not None:
            if role != msg.role:
                self._send(identity, Error("already_connected", f"already connected as {role}"))
            else:
                self._send(identity, Ack("connect", self.config.name))
            return
        if not self.config.secrets.admits(msg.role, msg.secret):
            # why no detail: a wrong secret and a missing one must look the same to a prober
            self._bad_frames.note(
                f"peer {identity.hex()} asked for role {msg.role!r} without its secret"
            )
            self._send(
                identity,
                Error("forbidden", f"the {msg.role} role needs this service's {msg.role} secret"),
            )
            return
        if msg.role == "engine":
            if self.stopped:
                self._send(identity, Error("stopped", "the coordinator stopped its engines"))
                return
            try:
                self.registry.add_engine(identity, msg.name, time.monotonic())
            except RegistryError as e:
                self._send(identity, Error(e.code, e.message))
                return
            log.info("replica %r registered", msg.name)
        else:
            self.registry.add_client(
                identity, msg.name, operator=msg.role == "operator", now=time.monotonic()
            )
        self._send(identity, Ack("connect", self.config.name))
        if msg.role == "engine" and self.paused:
            self._send(identity, Control("pause"))
        if msg.role == "engine":
            self._dispatch()

    def _owned_route(self, identity: bytes, engine_id: str | None) -> Route | None:
        """The route of ``engine_id`` if it was sent to this replica (no one else may answer)."""
        route = self.registry.lookup(engine_id) if engine_id is not None else None
        return route if route is not None and route.replica == identity else None

    def _on_engine(self, identity: bytes, msg: Message) -> None:
        replica = self.registry.engines[identity]
        route = self._owned_route(identity, getattr(msg, "request_id", None))
        if isinstance(msg, (Reply, Partial, Error)) and msg.request_id and route is None:
            log.info(
                "replica %r answered request %r, which it does not hold; dropped",
                replica.name,
                msg.request_id,
            )
        elif isinstance(msg, Reply):
            self.registry.complete(msg.request_id)
            assert route is not None  # decode makes request_id non-empty, so None was dropped
            self._send(route.client, Reply(route.request_id, msg.record, replica.name))
            self._dispatch()
        elif isinstance(msg, Partial):
            assert route is not None  # as for Reply
            self._send(
                route.client, Partial(route.request_id, msg.offset, msg.tokens, replica.name)
            )
        elif isinstance(msg, Error):
            if route is None:
                log.warning("replica %r reported: %s: %s", replica.name, msg.code, msg.message)
            else:
                assert msg.request_id is not None  # a route is only looked up for a request_id
                self.registry.complete(msg.request_id)
                # why: the engine names the id it was given; the client knows only its own
                message = msg.message.replace(
                    f"request {msg.request_id!r}", f"request {route.request_id!r}"
                )
                self._send(
                    route.client,
                    Error(msg.code, f"replica {replica.name!r}: {message}", route.request_id),
                )
                self._dispatch()
        elif isinstance(msg, Forgotten):
            self.registry.forget_prefix(identity, msg.keys)
        elif isinstance(msg, Bye):
            self._drop_engine(identity, "left")
        elif not isinstance(msg, Heartbeat):
            self._send(identity, Error("unexpected_kind", f"an engine may not send {msg.KIND!r}"))

    def _on_client(self, identity: bytes, msg: Message) -> None:
        if isinstance(msg, Submit):
            self._on_submit(identity, msg)
        elif isinstance(msg, Abort):
            route = self.registry.find(identity, msg.request_id)
            if route is None and self.waiting.remove(identity, msg.request_id) is not None:
                self._send(
                    identity,
                    Error("aborted", "aborted before a replica took it", msg.request_id),
                )
            elif route is None:
                self._send(
                    identity, Error("unknown_request", "no such request in flight", msg.request_id)
                )
            else:
                self._send(route.replica, Abort(route.engine_id))
        elif isinstance(msg, Control):
            if self.registry.role(identity) == "operator":
                self._on_control(identity, msg)
            else:
                self._send(
                    identity,
                    Error("forbidden", f"{msg.kind!r} needs the operator role (its secret)"),
                )
        elif isinstance(msg, Status):
            replicas = tuple((r.name, len(r.requests)) for r in self.registry.engines.values())
            self._send(identity, Status(replicas, self.paused))
        elif isinstance(msg, Heartbeat):
            self._send(identity, Heartbeat())
        elif isinstance(msg, Bye):
            self._drop_client(identity)
        else:
            self._send(identity, Error("unexpected_kind", f"a client may not send {msg.KIND!r}"))

    def _on_submit(self, identity: bytes, msg: Submit) -> None:
        if self.stopped:
            self._send(identity, Error("stopped", "the engines were stopped", msg.request_id))
            return
        waiting = self.waiting.holds(identity, msg.request_id)
        try:
            self.registry.check_new(identity, msg.request_id, waiting, self.waiting.count(identity))
        except RegistryError as e:
            self._send(identity, Error(e.code, e.message, msg.request_id))
            return
        busy = self._waiting_room_full(identity, prompt_size(msg.prompt))
        if busy:
            self._send(identity, Error("busy", busy, msg.request_id))
            return
        keys = self.config.prompt_keys(msg.prompt) if self.config.prompt_keys else []
        item = Waiting(
            msg.request_id,
            msg.prompt,
            msg.sampling,
            msg.stream,
            tuple(keys),
            prompt_size(msg.prompt),
        )
        self.waiting.push(identity, item)
        self._dispatch()

    def _waiting_room_full(self, client: bytes, size: int) -> str | None:
        """Why a prompt of ``size`` bytes cannot wait here now, or None: the prompts waiting
        for a replica are bounded per client and in all (their bytes are held here)."""
        limits = self.config.limits
        mine, everyone = self.waiting.bytes_of(client), self.waiting.bytes
        if mine and mine + size > limits.max_waiting_bytes_per_client:
            return (
                f"this client already has {mine} bytes of prompts waiting for a replica (the "
                f"limit is {limits.max_waiting_bytes_per_client}); wait for some replies"
            )
        if everyone and everyone + size > limits.max_waiting_bytes:
            return (
                f"{everyone} bytes of prompts are waiting for a replica (the limit is "
                f"{limits.max_waiting_bytes}); try again later"
            )
        return None

    def _dispatch(self) -> None:
        """Send waiting requests to replicas with room, the clients taking turns."""
        window, window_bytes = self.config.replica_window, self.config.replica_window_bytes
        while self.waiting:
            taken = self.waiting.take(
                lambda w: bool(self.registry.with_room(w.size, window, window_bytes))
            )
            if taken is None:
                return
            client, w = taken
            among = self.registry.with_room(w.size, window, window_bytes)
            try:
                route = self.registry.assign(client, w.request_id, w.keys, w.size, among)
            except RegistryError as e:
                self._send(client, Error(e.code, e.message, w.request_id))
                continue
            self._send(route.replica, Submit(route.engine_id, w.prompt, w.sampling, w.stream))

    def _fail_waiting(self, code: str, message: str) -> None:
        for client, w in self.waiting.drain():
            self._send(client, Error(code, message, w.request_id))

    def _on_control(self, identity: bytes, msg: Control) -> None:
        if msg.kind == "shutdown":
            self._send(identity, Ack("shutdown"))
            self.begin_shutdown("a client asked for it")
            return
        if msg.kind in ("pause", "unpause"):
            self.paused = msg.kind == "pause"
        else:
            self.stopped = True
            self._fail_waiting("stopped", "the engines were stopped")
        for engine in list(self.registry.engines):
            self._send(engine, msg)
        self._send(identity, Ack(msg.kind))

    # ---- peers leaving ---------------------------------------------------------------------

    def _send(self, identity: bytes, msg: Message) -> bool:
        try:
            self.sock.send_multipart([identity, encode(msg)], zmq.NOBLOCK)
            return True
        except zmq.ZMQError as e:  # why: EHOSTUNREACH (peer gone) or EAGAIN; never fatal
            self._peer_log.note(
                f"coordinator: cannot send {msg.KIND} to {identity.hex()} ({e})",
                level=logging.INFO,
            )
            self._unreachable.add(identity)
            return False

    def _reap_unreachable(self) -> None:
        while self._unreachable:
            identity = self._unreachable.pop()
            role = self.registry.role(identity)
            if role == "engine":
                self._drop_engine(identity, "disconnected")
            elif role == "client":
                self._drop_client(identity)

    def _drop_engine(self, identity: bytes, why: str) -> None:
        replica, routes = self.registry.remove_engine(identity)
        if not self.registry.engines:
            self._fail_waiting("no_replica", f"the last replica, {replica.name!r}, {why}")
        level = logging.WARNING if routes or why != "left" else logging.INFO
        log.log(
            level,
            "replica %r %s; failing its %d requests in flight",
            replica.name,
            why,
            len(routes),
        )
        for route in routes:
            self._send(
                route.client,
                Error(
                    "replica_failed",
                    f"replica {replica.name!r} {why} with request {route.request_id!r} in flight",
                    route.request_id,
                ),
            )

    def _drop_client(self, identity: bytes) -> None:
        self.waiting.drop_client(identity)
        for route in self.registry.remove_client(identity):
            if route.replica in self.registry.engines:
                self._send(route.replica, Abort(route.engine_id))


def write_address_file(path: str | Path, address: str) -> None:
    """Write ``address`` so a reader never sees a partial file (write, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(address + "\n")
    os.replace(tmp, path)


def write_secrets_file(path: str | Path, secrets: ServiceSecrets) -> None:
    """The secrets as environment lines, in a file only its owner can read (created so:
    never world-readable, not even for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # why: O_CREAT's mode does not apply to a file that already existed
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{name}={value}\n" for name, value in secrets.env().items()))


def _prefix_routing(args: argparse.Namespace) -> dict[str, Any]:
    """CoordinatorConfig's prefix routing settings from the flags (none without the flag)."""
    if not args.prefix_routing:
        return {}
    # why here: the tokenizer (and torch, through the loader) only when prefix routing is on
    from logitsmatch.engine.loader import resolve
    from logitsmatch.engine.prefix_cache import chain_keys

    tokenizer = resolve(args.prefix_tokenizer).tokenizer()
    block_size = args.kv_block_size

    def prompt_keys(prompt: str | Sequence[int]) -> list[bytes]:
        tokens = tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        return chain_keys(tokens, block_size)

    affinity = PrefixAffinity(args.prefix_routing, args.max_requests, args.routing_alpha)
    return {"prefix": affinity, "prompt_keys": prompt_keys}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m logitsmatch.serving.coordinator", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback)")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (reported)")
    p.add_argument("--address-file", help="write the bound tcp:// address here, atomically")
    p.add_argument("--policy", default="least_outstanding", choices=sorted(POLICIES))
    p.add_argument("--heartbeat-s", type=float, default=HEARTBEAT_S)
    p.add_argument("--engine-timeout-s", type=float, default=PEER_TIMEOUT_S)
    p.add_argument("--shutdown-grace-s", type=float, default=5.0)
    p.add_argument(
        "--client-timeout-s",
        type=float,
        default=PEER_TIMEOUT_S,
        help="forget a client silent this long (clients heartbeat while connected)",
    )
    p.add_argument("--curve-secret-cert", help="CURVE server secret certificate (zmq.auth)")
    p.add_argument("--curve-authorized-dir", help="folder of admitted client public certificates")
    p.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback bind without CURVE"
    )
    p.add_argument(
        "--prefix-routing",
        choices=PREFIX_POLICIES,
        default=None,
        help="route requests by the prompt blocks each replica is likely to hold cached "
        "(Megatron-LM's coordinator policies); needs --prefix-tokenizer",
    )
    p.add_argument("--prefix-tokenizer", help="the engines' model (its tokenizer hashes prompts)")
    p.add_argument("--kv-block-size", type=int, default=16, help="the engines' KV block size")
    p.add_argument(
        "--max-requests",
        type=int,
        default=REPLICA_WINDOW,
        help="an engine's concurrent requests: the most one replica is sent at once (the rest "
        "wait here and go out fairly across clients)",
    )
    p.add_argument("--routing-alpha", type=float, default=DEFAULT_ALPHA)
    p.add_argument(
        "--secrets-file",
        help=f"write the engine and operator secrets here (mode 0600, as {ENGINE_ENV}=... "
        f"lines); they come from {ENGINE_ENV} and {OPERATOR_ENV} when set, else fresh",
    )
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if args.prefix_routing and not args.prefix_tokenizer:
        p.error(f"--prefix-routing {args.prefix_routing} needs --prefix-tokenizer MODEL")
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s coordinator %(levelname)s %(message)s",
    )
    try:
        curve = (
            admit_engine_key(
                CurveServerKeys.from_files(args.curve_secret_cert, args.curve_authorized_dir),
                os.environ,
            )
            if args.curve_secret_cert
            else None
        )
        secrets = ServiceSecrets.from_env(os.environ) or ServiceSecrets.generate()
        if args.secrets_file:
            write_secrets_file(args.secrets_file, secrets)
        config = CoordinatorConfig(
            args.host,
            args.port,
            args.policy,
            args.heartbeat_s,
            args.engine_timeout_s,
            args.shutdown_grace_s,
            args.insecure,
            curve,
            secrets=secrets,
            client_timeout_s=args.client_timeout_s,
            replica_window=args.max_requests,
            **_prefix_routing(args),
        )
        coordinator = Coordinator(config)
    except (ValueError, OSError, zmq.ZMQError) as e:
        print(f"coordinator: {e}", file=sys.stderr)
        return 2
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    if args.address_file:
        write_address_file(args.address_file, coordinator.address)
    print(f"coordinator listening on {coordinator.address}", flush=True)
    if args.prefix_routing:
        print(
            f"coordinator routing: {args.prefix_routing} (alpha {args.routing_alpha}, "
            f"blocks of {args.kv_block_size} tokens by {args.prefix_tokenizer}'s tokenizer, "
            f"max {args.max_requests} requests a replica); without block keys: {args.policy}",
            flush=True,
        )
    else:
        print(f"coordinator routing: {args.policy}", flush=True)
    coordinator.serve(should_stop=lambda: bool(stop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
