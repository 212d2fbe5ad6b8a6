"""buildah and podman on a machine with no Docker engine: install them, configure them for this
host, and run their steps so that a failure names the step, quotes the builder and says how to
rerun it.

Everything lives under one state folder (``LOGITSMATCH_IMAGE_STATE``, default
``/var/tmp/logitsmatch-image``): the containers.conf and storage.conf written here, the
image storage they point to, the base image's root file system and the local wheel index. The
host's own container settings and storage are never touched; children see the two files
through ``CONTAINERS_CONF`` / ``CONTAINERS_STORAGE_CONF`` (``Podman.env``), and
``python -m logitsmatch.ci.image env`` prints them for a shell.

Stdlib only.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

DEFAULT_STATE = Path("/var/tmp/logitsmatch-image")
STATE_ENV = "LOGITSMATCH_IMAGE_STATE"
# buildah + podman, runc (see CONTAINERS_CONF), debootstrap for a local base, catatonit for
# `docker run --init`. No podman-docker: a real docker CLI earlier on PATH (without an engine)
# would still win, so `docker` comes from a shim of our own (Podman.write_config).
APT_PACKAGES = ("buildah", "podman", "runc", "debootstrap", "catatonit")
TOOLS = ("buildah", "podman", "debootstrap")
# what podman-docker installs as `docker`, in effect
DOCKER_SHIM = '#!/bin/sh\n# docker -> podman (logitsmatch.ci.podman)\nexec podman "$@"\n'

# why each setting: crun refuses this kind of host's hybrid cgroup layout (runc does not, and
# cgroupfs needs no systemd); podman's default ulimits exceed what such a host grants a
# container, so `run` fails before the entrypoint; the file events logger needs no journald.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""

STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{graphroot}"
runroot = "{runroot}"
"""


Stdin = int | IO[Any] | None  # what a step's standard input may be (None: /dev/null)


class StepFailed(RuntimeError):
    """A step of the image session failed; ``str()`` says which, why, and how to rerun it."""


def state_dir() -> Path:
    return Path(os.environ.get(STATE_ENV) or DEFAULT_STATE)


@dataclass(frozen=True)
class Podman:
    """The builder's configuration: its files and storage under ``state``."""

    state: Path

    @property
    def containers_conf(self) -> Path:
        return self.state / "containers.conf"

    @property
    def storage_conf(self) -> Path:
        return self.state / "storage.conf"

    @property
    def storage(self) -> Path:
        return self.state / "storage"

    @property
    def shim_dir(self) -> Path:
        """Holds ``docker``, which runs podman: prepend it to PATH (``docker_path``)."""
        return self.state / "bin"

    def write_config(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.containers_conf.write_text(CONTAINERS_CONF)
        self.storage_conf.write_text(
            STORAGE_CONF.format(graphroot=self.storage / "graph", runroot=self.storage / "run")
        )
        self.shim_dir.mkdir(exist_ok=True)
        shim = self.shim_dir / "docker"
        shim.write_text(DOCKER_SHIM)
        shim.chmod(0o755)

    def env(self) -> dict[str, str]:
        """What a child needs to use this builder's configuration and storage."""
        return {
            "CONTAINERS_CONF": str(self.containers_conf),
            "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
        }

    def docker_path(self) -> str:
        """PATH with the ``docker`` shim first."""
        return f"{self.shim_dir}{os.pathsep}{os.environ.get('PATH', '')}"

    def exports(self) -> str:
        """Shell lines that point ``podman``/``docker``/``buildah`` at this storage."""
        lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(self.env().items())]
        lines.append(f'export PATH={shlex.quote(str(self.shim_dir))}:"$PATH"')
        return "\n".join(lines) + "\n"

    def image_exists(self, ref: str) -> bool:
        proc = subprocess.run(
            ["podman", "image", "exists", ref], env=self.full_env(), capture_output=True
        )
        return proc.returncode == 0

    def run(
        self, step: str, argv: Sequence[str], log: Path | None = None, stdin: Stdin = None
    ) -> None:
        """Run one builder command as the step ``step``; raise StepFailed when it fails."""
        run_step(step, argv, self.full_env(), log, stdin=stdin, shown_env=self.env())

    def remove_storage(self) -> None:
        """Remove every image, container and layer of this storage (nothing outside it)."""
        if self.storage.exists():
            subprocess.run(
                ["podman", "system", "reset", "--force"],
                env=self.full_env(),
                capture_output=True,
                timeout=300,
            )
            shutil.rmtree(self.storage, ignore_errors=True)

    def full_env(self) -> dict[str, str]:
        """This process's environment plus ``env()``."""
        return {**os.environ, **self.env()}


def run_step(
    step: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    timeout_s: float = 1800,
    cwd: Path | None = None,
    stdin: Stdin = None,
    shown_env: Mapping[str, str] | None = None,
) -> None:
    """Run ``argv``; its output goes to the console (and ``log``). A non-zero exit raises
    StepFailed with the command's last lines and the command to rerun the step alone
    (``shown_env``: the variables that command needs, written before it)."""
    command = shlex.join(argv)
    if shown_env:
        command = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(shown_env.items())) + (
            f" {command}"
        )
    print(f"image: [{step}] $ {command}", flush=True)
    started = time.monotonic()
    tail: list[str] = []
    sink = open(log, "a") if log else None  # noqa: SIM115 - closed in finally
    try:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        # why a timer: a step that hangs silently must end too
        watchdog = threading.Timer(timeout_s, proc.kill)
        watchdog.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            if sink:
                sink.write(line)
            tail = [*tail, line.rstrip()][-15:]
        code = proc.wait()
        watchdog.cancel()
        if code != 0 and time.monotonic() - started >= timeout_s:
            tail.append(f"(killed: the step passed its {timeout_s:.0f} s deadline)")
    except FileNotFoundError as exc:
        raise StepFailed(f"step {step!r}: {argv[0]} is not installed ({exc})") from exc
    finally:
        if sink:
            sink.close()
    elapsed = time.monotonic() - started
    if code != 0:
        said = "\n".join(f"    {line}" for line in tail if line)
        raise StepFailed(
            f"step {step!r} failed (exit {code}) after {elapsed:.0f} s; the builder said:\n"
            f"{said}\n  rerun this step alone:\n    {command}"
        )
    print(f"image: [{step}] done in {elapsed:.0f} s", flush=True)


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def ensure_tools() -> None:
    """Install buildah, podman and the rest with apt-get when any is missing (as root)."""
    missing = missing_tools()
    if not missing:
        return
    install = ["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StepFailed(
            f"step 'tools': {', '.join(missing)} not installed, and this is not root on a "
            f"Debian-like host; install them, e.g.:\n    sudo apt-get update && "
            f"sudo {shlex.join(install)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run_step("tools", ["apt-get", "update", "-qq"], env=env)
    run_step("tools", install, env=env)
    if still := missing_tools():
        raise StepFailed(f"step 'tools': still missing after apt-get: {', '.join(still)}")
