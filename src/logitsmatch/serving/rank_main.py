"""What engine/launch.py starts on each rank of a served model: build this rank's engine, then run
the replica's worker loop against the coordinator (``python -m logitsmatch.serving.rank_main``)."""

from __future__ import annotations

import argparse
import os
import signal
import sys

import torch.distributed as dist

from logitsmatch.engine import build_engine, distributed
from logitsmatch.engine.generate_args import add_model_flags, engine_options
from logitsmatch.serving.errors import CoordinatorLost
from logitsmatch.serving.flags import add_serving_flags
from logitsmatch.serving.security import engine_curve_from_env
from logitsmatch.serving.worker import EXIT_LOST, engine_secret, run_worker


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m logitsmatch.serving.rank_main")
    p.add_argument("--coordinator", required=True, help="tcp:// address of the coordinator")
    add_model_flags(p)
    add_serving_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    # parse_known_args: the driver's request flags (--prompts, --output-path, ...) come along.
    args, _ = parser().parse_known_args(argv)
    options = engine_options(args)
    layout = options.layout
    engine = build_engine(options)
    ctx = engine.ctx
    stop: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    rank = dist.get_rank() if dist.is_initialized() else 0
    print(
        f"logitsmatch: {layout.describe(rank)} serving replica dp{ctx.dp_rank}",
        file=sys.stderr,
        flush=True,
    )
    try:
        run_worker(
            engine,
            args.coordinator,
            f"dp{ctx.dp_rank}",
            ctx if len(ctx.replica_ranks) > 1 else None,
            heartbeat_s=args.heartbeat_s,
            coordinator_timeout_s=args.coordinator_timeout_s,
            should_stop=lambda: bool(stop),
            secret=engine_secret(),
            curve=engine_curve_from_env(os.environ),
        )
    except CoordinatorLost as exc:
        print(f"logitsmatch: {layout.describe(rank)}: {exc}", file=sys.stderr)
        return EXIT_LOST
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
