"""Command-line flags shared by the serving commands (serve, generate --zmq, the rank and
worker entry points); their defaults come from ``serving.timeouts``."""

from __future__ import annotations

import argparse

from logitsmatch.serving.timeouts import HEARTBEAT_S, PEER_TIMEOUT_S


def add_serving_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("serving")
    g.add_argument("--heartbeat-s", type=float, default=HEARTBEAT_S)
    g.add_argument(
        "--coordinator-timeout-s",
        type=float,
        default=PEER_TIMEOUT_S,
        help="how long engines and the coordinator wait for each other; must exceed "
        "the longest engine step",
    )
