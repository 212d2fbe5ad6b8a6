"""``logitsmatch generate --zmq``: the Megatron-style coordinator run.

Starts a coordinator (loopback, a free port) and the engine ranks (engine/launch.py), submits the
prompts through the coordinator ``--incoming-requests-per-step`` at a time (32 by default), or
each at its time with ``--incoming-requests-per-sec`` > 0 (request i of a burst
generating ``num_tokens_to_generate + i`` tokens unless ``--no-stagger-lengths``), waits for all
within the deadline, writes the output JSON (``--output-every-n-results`` of them), and shuts
everything down. A dead rank fails the run with that rank named (by the launcher), never a hang.
``--inference-repeat-n`` above 1 is refused: the driver runs each request once (as Megatron-LM
refuses it with its coordinator: served engines are not reset between trials).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from logitsmatch.engine import resolve_model
from logitsmatch.engine.generate_args import (
    arrivals_of,
    engine_options,
    generate_parser,
    read_prompts,
    sampling_for,
)
from logitsmatch.engine.launch import RankJob
from logitsmatch.record import write_output
from logitsmatch.serving.driver import DriverError, run_driver
from logitsmatch.serving.errors import CoordinatorLost
from logitsmatch.serving.flags import add_serving_flags
from logitsmatch.serving.launch import Service, start_service
from logitsmatch.serving.prefix_routing import DEFAULT_ALPHA, PREFIX_POLICIES

DEFAULT_REQUESTS_PER_BURST = 32  # Megatron-LM's coordinator test's


def parser() -> argparse.ArgumentParser:
    p = generate_parser()
    p.prog = "logitsmatch generate --zmq"
    p.add_argument(
        "--no-stagger-lengths",
        action="store_true",
        help="every request generates exactly --num-tokens-to-generate tokens",
    )
    p.add_argument(
        "--inference-dynamic-batching-prefix-caching-coordinator-policy",
        dest="coordinator_policy",
        choices=("load_balanced", *PREFIX_POLICIES),
        default="load_balanced",
        help="load_balanced: the fewest requests in flight; longest_prefix / first_prefix_block: "
        "prefix-aware (with --inference-dynamic-batching-prefix-caching; else load_balanced)",
    )
    p.add_argument(
        "--inference-dynamic-batching-prefix-caching-routing-alpha",
        dest="routing_alpha",
        type=float,
        default=DEFAULT_ALPHA,
        help="prefix routing: score = alpha * prefix match + (1 - alpha) * free capacity",
    )
    add_serving_flags(p)
    return p


def coordinator_routing(args: argparse.Namespace) -> list[str]:
    """The coordinator's routing flags: a replica is sent at most the requests its engine
    runs at once; prefix-aware only when the engines cache prefixes (as Megatron-LM falls
    back to load-balanced routing without prefix caching)."""
    window = ["--max-requests", str(args.inference_max_requests)]
    if args.coordinator_policy == "load_balanced" or not args.prefix_caching:
        return window
    return [
        *window,
        "--prefix-routing",
        args.coordinator_policy,
        "--prefix-tokenizer",
        args.model,
        "--kv-block-size",
        str(args.kv_block_size),
        "--routing-alpha",
        str(args.routing_alpha),
    ]


def _stop_coordinator_if_ranks_die(job: RankJob, coordinator: Service) -> None:
    """A job that dies before or while serving would leave the driver waiting for replicas
    until its deadline; stopping the coordinator makes the driver fail at once instead."""
    while job.poll() is None:
        time.sleep(0.2)
    if job.poll() != 0:
        coordinator.stop()


def main(argv: list[str]) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.inference_repeat_n != 1:
        p.error(
            f"--inference-repeat-n {args.inference_repeat_n}: the ZMQ driver does not repeat "
            "(it runs each request once); drop --zmq to repeat in-process"
        )
    if not 0.0 <= args.routing_alpha <= 1.0:
        p.error(
            "--inference-dynamic-batching-prefix-caching-routing-alpha: must be in [0, 1], "
            f"got {args.routing_alpha}"
        )
    options = engine_options(args)
    layout = options.layout
    prompts = read_prompts(args)
    arrivals = arrivals_of(args, len(prompts))
    print(f"logitsmatch: arrivals: {arrivals.describe(len(prompts))}", file=sys.stderr)
    sampling = sampling_for(args, 0)
    resolve_model(options)  # an unknown model or a bad layout fails before any rank starts
    coordinator, job = start_service(
        layout,
        argv,
        args.run_dir,
        "--engine-timeout-s",
        str(args.coordinator_timeout_s),
        *coordinator_routing(args),
    )
    assert coordinator.address is not None
    watchdog = threading.Thread(
        target=_stop_coordinator_if_ranks_die, args=(job, coordinator), daemon=True
    )
    watchdog.start()
    code = 0
    try:
        output = run_driver(
            coordinator.address,
            prompts,
            sampling,
            args.incoming_requests_per_step or DEFAULT_REQUESTS_PER_BURST,
            arrival_times=arrivals.times(len(prompts)) if arrivals.timed else None,
            stagger_lengths=not args.no_stagger_lengths,
            deadline_s=args.deadline_s,
            min_replicas=layout.dp,
            shutdown=True,
            output_every_n=args.output_every_n_results,
            operator_secret=coordinator.secrets.operator,
        )
    except (DriverError, CoordinatorLost, TimeoutError, RuntimeError) as exc:
        print(f"logitsmatch generate --zmq: {exc}", file=sys.stderr)
        output, code = None, 1
    finally:
        rank_code = job.wait(deadline_s=30.0 if code == 0 else 5.0)
        coordinator.stop()
    if output is not None:
        write_output(args.output_path, output)
    return code or rank_code
