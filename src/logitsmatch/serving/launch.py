"""Start the coordinator, single-rank workers and multi-rank engine jobs, and reap them.

Each child logs to a file (never a pipe nobody reads, which could fill and block it). A
Service is stopped with SIGTERM, then SIGKILL if it has not exited within its deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from logitsmatch.engine.launch import RankJob
from logitsmatch.engine.layout import Layout
from logitsmatch.process_group import die_with_parent
from logitsmatch.serving.roles import ENGINE_ENV, ServiceSecrets
from logitsmatch.serving.security import engine_curve_env


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    secrets: ServiceSecrets  # the service's engine and operator secrets
    address: str | None = None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL (a crash, for fault tests) and reap."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def _spawn(
    name: str,
    module: str,
    args: list[str],
    log_dir: Path,
    secrets: ServiceSecrets,
    env: dict[str, str],
) -> Service:
    """``env``: the secrets this child may know, in its environment (argv is world-readable)."""
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            preexec_fn=die_with_parent,
        )
    return Service(name, process, log_path, secrets=secrets)


def start_coordinator(
    *args: str,
    log_dir: str | Path | None = None,
    timeout_s: float = 30.0,
    secrets: ServiceSecrets | None = None,
    env: dict[str, str] | None = None,
) -> Service:
    """Start ``python -m logitsmatch.serving.coordinator`` and wait for its address.

    ``secrets``: the service's (fresh ones unless given); ``Service.secrets`` holds them for
    the workers and the operator. ``env``: more of its environment (e.g. the engines' CURVE
    public key)."""
    secrets = secrets or ServiceSecrets.generate()
    folder = Path(log_dir or tempfile.mkdtemp(prefix="logitsmatch-serving-"))
    address_file = folder / "coordinator.address"
    address_file.unlink(missing_ok=True)
    service = _spawn(
        "coordinator",
        "logitsmatch.serving.coordinator",
        ["--address-file", str(address_file), *args],
        folder,
        secrets,
        {**(env or {}), **secrets.env()},
    )
    deadline = time.monotonic() + timeout_s
    while not address_file.exists():
        if service.process.poll() is not None:
            raise RuntimeError(
                f"the coordinator exited with code {service.process.returncode} "
                f"before binding:\n{service.log_tail()}"
            )
        if time.monotonic() > deadline:
            service.kill()
            raise TimeoutError(
                f"the coordinator wrote no address within {timeout_s} s:\n{service.log_tail()}"
            )
        time.sleep(0.02)
    service.address = address_file.read_text().strip()
    return service


def start_worker(
    address: str,
    name: str,
    *args: str,
    secrets: ServiceSecrets,
    log_dir: str | Path | None = None,
) -> Service:
    """Start ``python -m logitsmatch.serving.worker`` for replica ``name`` (args: engine flags)
    with the service's ``secrets`` (its coordinator's ``Service.secrets``).

    It registers on its own; use Client.wait_for_replicas to know when it is ready.
    """
    folder = Path(log_dir or tempfile.mkdtemp(prefix="logitsmatch-serving-"))
    return _spawn(
        f"worker-{name}",
        "logitsmatch.serving.worker",
        ["--coordinator", address, "--name", name, *args],
        folder,
        secrets,
        {ENGINE_ENV: secrets.engine},  # why not the operator's: a worker is an engine
    )


def start_service(
    layout: Layout,
    argv: list[str],
    run_dir: str | Path | None,
    *coordinator_args: str,
    curve_server_public: bytes | None = None,
) -> tuple[Service, RankJob]:
    """A coordinator plus the engine ranks that serve it (engine/launch.py running
    ``logitsmatch.serving.rank_main``), all logging into one run folder, with fresh secrets
    (``coordinator.secrets``: the operator's is what may stop the service).

    The ranks parse the model and parallel flags out of ``argv`` and ignore the rest.
    ``curve_server_public``: the coordinator serves CURVE with this key (its
    ``coordinator_args`` name the certificate); the ranks get a fresh engine keypair, which
    the coordinator admits.
    """
    folder = Path(run_dir or tempfile.mkdtemp(prefix="logitsmatch-serving-"))
    folder.mkdir(parents=True, exist_ok=True)
    rank_curve: dict[str, str] = {}
    coordinator_curve: dict[str, str] = {}
    if curve_server_public is not None:
        rank_curve, coordinator_curve = engine_curve_env(curve_server_public)
    coordinator = start_coordinator(*coordinator_args, log_dir=folder, env=coordinator_curve)
    assert coordinator.address is not None
    job = RankJob(
        "logitsmatch.serving.rank_main",
        ["--coordinator", coordinator.address, *argv],
        layout,
        folder,
        # why not the operator's: a rank is an engine, nothing more
        env={ENGINE_ENV: coordinator.secrets.engine, **rank_curve},
    )
    return coordinator, job
