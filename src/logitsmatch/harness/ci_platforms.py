"""Where each platform's CI jobs run: image variant, runner labels/tags and `docker run` flags.

Stdlib only on purpose: CI runners import this (through `repro`) with a bare `python3` and
`PYTHONPATH=src`, before anything is installed. Adding a platform to the case files without a
row here makes the matrix generator fail with the platform's name: a case never drops silently
out of CI because nobody said where it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

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
class ImageBuild:
    """Where one image variant (a Dockerfile target) is built and pushed.

    `gitlab_dind`: the GitLab job runs in a `docker` CLI container with a Docker-in-Docker
    service (shared runners); otherwise on a runner whose shell has a Docker engine.
    """

    variant: str
    github_runs_on: tuple[str, ...]
    gitlab_tags: tuple[str, ...]
    gitlab_dind: bool

    def __post_init__(self) -> None:
        if self.variant not in IMAGE_VARIANTS:
            raise ValueError(f"ImageBuild.variant: {self.variant!r} is not one of {IMAGE_VARIANTS}")
        if not self.github_runs_on:
            raise ValueError(f"ImageBuild.github_runs_on: empty for variant {self.variant!r}")
        if not self.gitlab_dind and not self.gitlab_tags:
            raise ValueError(
                f"ImageBuild.gitlab_tags: variant {self.variant!r} runs on a shell runner: "
                "name its tags"
            )


@dataclass(frozen=True)
class CiPlatform:
    """How the case jobs of one platform run in CI (and in `repro`)."""

    name: str
    image_variant: str
    github_runs_on: tuple[str, ...]
    gitlab_tags: tuple[str, ...]
    gitlab_dind: bool
    docker_args: tuple[str, ...]
    timeout_minutes: int

    def __post_init__(self) -> None:
        if not self.name or "@" in self.name:
            raise ValueError(f"CiPlatform.name: {self.name!r} must be non-empty without '@'")
        if self.image_variant not in IMAGE_VARIANTS:
            raise ValueError(
                f"CiPlatform.image_variant: {self.image_variant!r} is not one of {IMAGE_VARIANTS}"
            )
        if not self.github_runs_on:
            raise ValueError(f"CiPlatform.github_runs_on: empty for platform {self.name!r}")
        if not self.gitlab_dind and not self.gitlab_tags:
            raise ValueError(
                f"CiPlatform.gitlab_tags: platform {self.name!r} runs on a shell runner: "
                "name its tags"
            )
        if self.timeout_minutes <= 0:
            raise ValueError(f"CiPlatform.timeout_minutes: {self.timeout_minutes!r} must be > 0")

    @property
    def uses_gpus(self) -> bool:
        """True when the container is given the host's GPUs."""
        return "--gpus" in self.docker_args


# Self-hosted runners carry the platform name as a label (GitHub) or tag (GitLab), so one
# runner host per hardware kind serves every case of that platform.
PLATFORMS: dict[str, CiPlatform] = {
    p.name: p
    for p in (
        CiPlatform(
            name="cpu",
            image_variant="cpu",
            github_runs_on=("ubuntu-24.04",),
            gitlab_tags=(),
            gitlab_dind=True,
            docker_args=CPU_DOCKER_ARGS,
            timeout_minutes=60,
        ),
        CiPlatform(
            name="dgx_h100",
            image_variant="gpu",
            github_runs_on=("self-hosted", "linux", "x64", "dgx_h100"),
            gitlab_tags=("logitsmatch-gpu", "dgx_h100"),
            gitlab_dind=False,
            docker_args=GPU_DOCKER_ARGS,
            timeout_minutes=120,
        ),
    )
}

# The GPU image starts from a ~20 GB CUDA base: too big for hosted runners' disks, so it is
# built on a self-hosted runner that has a Docker engine and room.
IMAGE_BUILDS: dict[str, ImageBuild] = {
    b.variant: b
    for b in (
        ImageBuild(
            variant="cpu", github_runs_on=("ubuntu-24.04",), gitlab_tags=(), gitlab_dind=True
        ),
        ImageBuild(
            variant="gpu",
            github_runs_on=("self-hosted", "linux", "x64", "logitsmatch-image-build"),
            gitlab_tags=("logitsmatch-image-build",),
            gitlab_dind=False,
        ),
    )
}


def ci_platform(name: str) -> CiPlatform:
    """The CI settings of platform `name`; a ValueError naming it when CI does not know it."""
    try:
        return PLATFORMS[name]
    except KeyError:
        raise ValueError(
            f"platform {name!r} has no CI runner settings; add it to PLATFORMS in "
            f"src/logitsmatch/harness/ci_platforms.py (known: {sorted(PLATFORMS)})"
        ) from None


def image_ref(repository: str, variant: str, commit: str) -> str:
    """The image reference CI pushes for `variant` built from `commit`: `<repo>:<variant>-<commit>`.

    `repository` and `commit` may be CI variable placeholders (`$CI_REGISTRY_IMAGE`), so that
    the pipeline files and this function are checked against each other as strings.
    """
    if variant not in IMAGE_VARIANTS:
        raise ValueError(f"image variant {variant!r} is not one of {IMAGE_VARIANTS}")
    if not repository or not commit:
        raise ValueError(f"image_ref: empty repository {repository!r} or commit {commit!r}")
    return f"{repository}:{variant}-{commit}"
