"""``logitsmatch serve``: a coordinator plus engine ranks, serving until interrupted.

Prints the coordinator's address; clients (``logitsmatch.serving.client.Client``) connect to
it. The service's secrets (``roles.py``) go to its ranks in their environment and to
``<run dir>/secrets.env`` (mode 0600): the operator's is what may pause, stop or shut it
down. SIGINT/SIGTERM shut the engines and the coordinator down cleanly; a dead rank ends the
service with that rank named.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

import zmq.auth

from logitsmatch.engine import resolve_model
from logitsmatch.engine.generate_args import add_model_flags, engine_options
from logitsmatch.serving.flags import add_serving_flags
from logitsmatch.serving.launch import start_service


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="logitsmatch serve", description=__doc__.split("\n\n")[0])
    add_model_flags(p)
    add_serving_flags(p)
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback)")
    p.add_argument("--port", type=int, default=0, help="0 = any free port")
    p.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback --host without CURVE keys"
    )
    p.add_argument(
        "--curve-secret-cert",
        help="serve CURVE with this server secret certificate (zmq.auth); the ranks get an "
        "engine keypair of their own",
    )
    p.add_argument(
        "--curve-authorized-dir",
        help="with --curve-secret-cert: admit only the clients whose public certificates are here",
    )
    p.add_argument("--run-dir", default=None, help="coordinator and rank logs")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    options = engine_options(args)
    layout = options.layout
    resolve_model(options)  # an unknown model or a bad layout fails before any rank starts
    extra = ["--insecure"] if args.insecure else []
    server_public = None
    if args.curve_secret_cert:
        server_public, _ = zmq.auth.load_certificate(args.curve_secret_cert)
        extra += ["--curve-secret-cert", args.curve_secret_cert]
        if args.curve_authorized_dir:
            extra += ["--curve-authorized-dir", args.curve_authorized_dir]
    elif args.curve_authorized_dir:
        raise ValueError("--curve-authorized-dir needs --curve-secret-cert")
    folder = Path(args.run_dir or tempfile.mkdtemp(prefix="logitsmatch-serve-"))
    folder.mkdir(parents=True, exist_ok=True)
    secrets_file = folder / "secrets.env"
    coordinator, job = start_service(
        layout,
        argv,
        folder,
        "--secrets-file",
        str(secrets_file),
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--engine-timeout-s",
        str(args.coordinator_timeout_s),
        # why: a replica is sent no more than it runs at once; the rest wait, fairly
        "--max-requests",
        str(options.scheduler.max_num_seqs),
        *extra,
        curve_server_public=server_public,
    )
    print(
        f"logitsmatch serve: coordinator at {coordinator.address} "
        f"({layout.world_size} ranks, {layout.dp} replicas; logs in {job.folder}); the "
        f"operator secret, which may pause or stop it, is in {secrets_file} (mode 0600)",
        flush=True,
    )
    stop: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    while not stop and job.poll() is None and coordinator.process.poll() is None:
        time.sleep(0.2)
    coordinator.stop()  # SIGTERM: it tells the engines to stop, then exits
    code = job.wait(deadline_s=30.0)
    return 0 if stop and code in (0, 3) else (code or 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
