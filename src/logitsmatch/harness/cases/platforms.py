"""The platform table: one row per platform a case may list, hardware and CI together.

A platform names hardware + backend + dtype (``cpu``: gloo, fp32, any CPU; ``dgx_h100``: 8×
H100, NCCL, bf16) and where its CI jobs run (image variant, runner labels and tags, ``docker
run`` flags, timeout). Everything that needs a platform reads ``PLATFORMS``: the case schema
(a case may list only these names), machine detection (``harness.run.machine``), the builtin
engine's device and dtype (``harness.cases.flags``), the CI matrix and repro (``logitsmatch.ci``).
Adding a platform is adding a row here, with its runners: a case never drops silently out of
CI because nobody said where it runs.

Stdlib only on purpose: CI runners import this (through ``logitsmatch.ci.repro``) with a bare
``python3`` and ``PYTHONPATH=src``, before anything is installed.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace

BACKENDS = ("gloo", "nccl")
DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("cpu", "cuda")
IMAGE_VARIANTS = ("cpu", "gpu")

# NVIDIA's recommended flags for PyTorch containers: the host IPC namespace (NCCL and CUDA IPC
# share memory between ranks) and no limit on pinned memory; a 64 MiB stack for deep recursion.
GPU_DOCKER_ARGS = (
    "--gpus",
    "all",
    "--ipc=host",
    "--ulimit",
    "memlock=-1",
    "--ulimit",
    "stack=67108864",
)
# Docker's default /dev/shm is 64 MiB, too small for several ranks' shared-memory buffers.
CPU_DOCKER_ARGS = ("--shm-size=2g",)


@dataclass(frozen=True)
class Platform:
    """One row of the platform table.

    Hardware: ``devices`` is the accelerators a full machine of this kind has (one rank per
    device); 0 on ``cpu``, where ranks are processes and any count runs. ``device_match``: a
    substring of ``torch.cuda.get_device_name()`` (case-insensitive) that identifies the
    accelerator.

    CI: ``image_variant`` is the Dockerfile target its jobs run in; ``github_runs_on`` the
    GitHub runner labels; ``gitlab_dind``: the GitLab job runs in a ``docker`` CLI container
    with a Docker-in-Docker service (shared runners), else on a runner with ``gitlab_tags``
    whose shell has a Docker engine; ``docker_args`` the ``docker run`` flags of its jobs;
    ``timeout_minutes`` how long a job may take.
    """

    name: str
    backend: str
    dtype: str
    device: str
    devices: int
    image_variant: str
    github_runs_on: tuple[str, ...]
    gitlab_tags: tuple[str, ...]
    gitlab_dind: bool
    docker_args: tuple[str, ...]
    timeout_minutes: int
    device_match: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", self.name):
            raise ValueError(f"Platform.name: {self.name!r} must be lowercase letters, digits, _")
        for field, value, allowed in (
            ("backend", self.backend, BACKENDS),
            ("dtype", self.dtype, DTYPES),
            ("device", self.device, DEVICES),
            ("image_variant", self.image_variant, IMAGE_VARIANTS),
        ):
            if value not in allowed:
                raise ValueError(f"Platform.{field}: {value!r} is not one of {allowed}")
        if self.device == "cuda" and (self.devices < 1 or not self.device_match):
            raise ValueError(
                f"Platform {self.name!r}: a cuda platform needs devices >= 1 and a "
                f"device_match, got {self.devices} and {self.device_match!r}"
            )
        if not self.github_runs_on:
            raise ValueError(f"Platform.github_runs_on: empty for platform {self.name!r}")
        if not self.gitlab_dind and not self.gitlab_tags:
            raise ValueError(
                f"Platform.gitlab_tags: platform {self.name!r} runs on a shell runner: "
                "name its tags"
            )
        if self.timeout_minutes <= 0:
            raise ValueError(f"Platform.timeout_minutes: {self.timeout_minutes!r} must be > 0")

    @property
    def uses_gpus(self) -> bool:
        """True when the CI container is given the host's GPUs."""
        return "--gpus" in self.docker_args


# Self-hosted runners carry the platform name as a label (GitHub) or tag (GitLab), so one
# runner host per hardware kind serves every case of that platform.
PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform(
            "cpu",
            backend="gloo",
            dtype="float32",
            device="cpu",
            devices=0,
            image_variant="cpu",
            github_runs_on=("ubuntu-24.04",),
            gitlab_tags=(),
            gitlab_dind=True,
            docker_args=CPU_DOCKER_ARGS,
            timeout_minutes=60,
        ),
        Platform(
            "dgx_h100",
            backend="nccl",
            dtype="bfloat16",
            device="cuda",
            devices=8,
            device_match="H100",
            image_variant="gpu",
            github_runs_on=("self-hosted", "linux", "x64", "dgx_h100"),
            gitlab_tags=("logitsmatch-gpu", "dgx_h100"),
            gitlab_dind=False,
            docker_args=GPU_DOCKER_ARGS,
            timeout_minutes=120,
        ),
    )
}
TABLE = "PLATFORMS in src/logitsmatch/harness/cases/platforms.py"
# The scratch platform: this machine as it is, with goldens of its own (golden/local/, ignored
# by git), for exploring without touching the shipped goldens. Any case runs on it.
SCRATCH = "local"


def platform_info(name: str) -> Platform | None:
    """The table row of ``name``, or None for a platform the table does not know."""
    return PLATFORMS.get(name)


def check_platform(name: str) -> None:
    """A ValueError naming the nearest known platform unless ``name`` is one, or the scratch
    platform (a typo never means "skip everything")."""
    names = [*(p for p in PLATFORMS if p != SCRATCH), SCRATCH]
    if name not in names:
        (nearest,) = difflib.get_close_matches(name, names, n=1, cutoff=0.0)
        raise ValueError(
            f"--platform {name!r} is not a known platform; did you mean {nearest!r}? "
            f"(known: {', '.join(names)}; the table is {TABLE})"
        )


def use_scratch(base: str) -> None:
    """Make the scratch platform this process's ``base`` machine (its device, dtype and
    devices) under the name ``local``. why a table row: every lookup of a target's hardware
    then reads it as it reads any platform's."""
    PLATFORMS[SCRATCH] = replace(PLATFORMS[base], name=SCRATCH)
