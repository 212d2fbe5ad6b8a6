"""The engine worker loop of one data-parallel replica.

The replica's entry rank (``ctx.replica_ranks[0]``, or the only rank) owns the ZMQ DEALER
socket: it registers with the coordinator, receives submits, aborts and control messages,
sends heartbeats, and sends back finished records (and partial replies for streamed requests)
and the prefix-cache keys the engine forgot (for the coordinator's prefix routing).

Multi-rank replicas (TP x PP > 1): we distribute with torch.distributed, not ZMQ. Every loop
iteration the entry rank broadcasts that iteration's events over ``ctx.replica_group``
(lockstep.py); every rank applies the same events in the same order and then calls
``engine.step()`` when there is work, so all ranks step together. Why torch.distributed: the
ranks already share that group for the model's own collectives, its timeout bounds every wait
(a dead entry rank cannot hang the others forever), and no second set of sockets or
addresses is needed. The cost is one small broadcast per iteration, also while idle (at most
every ``idle_poll_s``).

A step blocks the loop, so ``coordinator_timeout_s`` on both sides must exceed the longest
step. Exits: returns "stop" / "shutdown" when told to; raises CoordinatorLost when the
coordinator is silent past ``coordinator_timeout_s``.

Run one single-rank replica: ``python -m logitsmatch.serving.worker --coordinator ADDR
--name r0 --model tiny`` (or ``--null-engine`` for a model-free engine).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from logitsmatch.engine.generate_args import add_model_flags
from logitsmatch.serving.errors import CoordinatorLost
from logitsmatch.serving.flags import add_serving_flags
from logitsmatch.serving.limits import DEFAULT_LIMITS, Limits
from logitsmatch.serving.roles import ENGINE_ENV
from logitsmatch.serving.security import CurveClientKeys, engine_curve_from_env
from logitsmatch.serving.timeouts import HEARTBEAT_S, PEER_TIMEOUT_S
from logitsmatch.serving.worker_link import CoordinatorLink
from logitsmatch.serving.worker_state import ReplicaState

log = logging.getLogger(__name__)
EXIT_LOST = 3


def run_worker(
    engine: Any,
    coordinator_address: str,
    replica_name: str,
    ctx: Any = None,
    heartbeat_s: float = HEARTBEAT_S,
    coordinator_timeout_s: float = PEER_TIMEOUT_S,
    *,
    idle_poll_s: float = 0.02,
    limits: Limits = DEFAULT_LIMITS,
    curve: CurveClientKeys | None = None,
    should_stop: Callable[[], bool] | None = None,
    secret: str | None = None,
) -> str:
    """Serve ``engine`` as replica ``replica_name`` until stopped; returns the reason.

    ``ctx``: the engine's ParallelContext for a multi-rank replica (None = one rank).
    ``should_stop``: polled by the entry rank each iteration (e.g. set by a signal handler);
    when true the replica aborts its requests, says bye and returns "stop". ``secret``: the
    service's engine secret (``roles.py``), without which the coordinator refuses it.
    """
    lockstep = ctx is not None and len(ctx.replica_ranks) > 1
    entry = True
    if lockstep:
        import torch.distributed as dist  # why: single-rank workers start without torch

        from logitsmatch.serving.lockstep import broadcast_events

        entry = dist.get_rank() == ctx.replica_ranks[0]
    link = None
    if entry:
        link = CoordinatorLink(
            coordinator_address,
            replica_name,
            heartbeat_s=heartbeat_s,
            timeout_s=coordinator_timeout_s,
            limits=limits,
            curve=curve,
            secret=secret,
        )
    state = ReplicaState(engine)
    said_bye = False
    try:
        if link is not None:
            try:
                link.register()
            except (CoordinatorLost, RuntimeError) as e:
                if lockstep:  # why: the other ranks wait in the first broadcast; let them go
                    broadcast_events([["lost", str(e)]], ctx.replica_ranks[0], ctx.replica_group)
                raise
            log.info("replica %r registered with %s", replica_name, coordinator_address)
        while True:
            events = []
            if link is not None:
                events = link.collect(0.0 if state.should_step() else idle_poll_s)
                if should_stop is not None and should_stop():
                    events.append(["stop"])
            if lockstep:
                events = broadcast_events(events, ctx.replica_ranks[0], ctx.replica_group)
            outcome = state.apply(events)
            if link is not None:
                link.send_outcome(outcome)
            if outcome.lost is not None:
                raise CoordinatorLost(outcome.lost)
            if outcome.exit is not None:
                said_bye = True
                return outcome.exit
            if state.should_step():
                records = state.step()
                if link is not None:
                    for record in records:
                        link.send_record(record)
                    for rid, offset, tokens in state.partials():
                        link.send_partial(rid, offset, tokens)
                    if forgotten := state.forgotten_keys():
                        link.send_forgotten(forgotten)
    finally:
        if link is not None:
            link.close(bye=said_bye)


def engine_secret() -> str | None:
    """The service's engine secret, handed down in the environment (``roles.ENGINE_ENV``)."""
    return os.environ.get(ENGINE_ENV)


def _build_engine(args: argparse.Namespace) -> Any:
    if args.null_engine:
        from logitsmatch.serving.null_engine import NullEngine

        return NullEngine(step_delay_s=args.null_step_delay_s)
    from logitsmatch.engine import build_engine  # why: a null-engine worker starts without torch
    from logitsmatch.engine.generate_args import engine_options

    options = engine_options(args)
    if options.layout.world_size != 1:
        raise ValueError("a worker serves one single-rank replica; use serve for a layout")
    return build_engine(options)


def _curve(args: argparse.Namespace) -> CurveClientKeys | None:
    if not args.curve_server_key and not args.curve_cert:
        return None
    if not (args.curve_server_key and args.curve_cert):
        raise ValueError("CURVE needs both --curve-server-key and --curve-cert")
    import zmq.auth

    public, secret = zmq.auth.load_certificate(args.curve_cert)
    if secret is None:
        raise ValueError(f"--curve-cert {args.curve_cert}: not a secret certificate")
    return CurveClientKeys(args.curve_server_key.encode(), public, secret)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m logitsmatch.serving.worker", description="Serve one single-rank replica."
    )
    p.add_argument("--coordinator", required=True, help="tcp:// address of the coordinator")
    p.add_argument("--name", required=True, help="replica name (unique per coordinator)")
    add_model_flags(p)
    p.add_argument("--null-engine", action="store_true", help="model-free engine (no --model)")
    p.add_argument("--null-step-delay-s", type=float, default=0.0)
    add_serving_flags(p)
    p.add_argument("--curve-server-key", help="the coordinator's Z85 CURVE public key")
    p.add_argument("--curve-cert", help="this worker's CURVE secret certificate (zmq.auth)")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s worker {args.name} %(levelname)s %(message)s",
    )
    stop: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    try:
        reason = run_worker(
            _build_engine(args),
            args.coordinator,
            args.name,
            heartbeat_s=args.heartbeat_s,
            coordinator_timeout_s=args.coordinator_timeout_s,
            should_stop=lambda: bool(stop),
            secret=engine_secret(),
            curve=_curve(args) or engine_curve_from_env(os.environ),
        )
    except CoordinatorLost as e:
        print(f"worker {args.name}: {e}", file=sys.stderr)
        return EXIT_LOST
    except (RuntimeError, ValueError) as e:
        print(f"worker {args.name}: {e}", file=sys.stderr)
        return 2
    log.info("replica %r exits: %s", args.name, reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())
