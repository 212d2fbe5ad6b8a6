"""Where CI jobs run: each platform's runner (a row of the one platform table), the image builds
and the image references CI pushes and pulls.

Stdlib only on purpose: CI runners import this (through `repro`) with a bare `python3` and
`PYTHONPATH=src`, before anything is installed.
"""

from __future__ import annotations

from dataclasses import dataclass

from logitsmatch.harness.cases.platforms import IMAGE_VARIANTS, PLATFORMS, TABLE, Platform


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


def ci_platform(name: str) -> Platform:
    """The table row (with its CI runner settings) of platform `name`; a ValueError naming it
    when the table does not know it."""
    try:
        return PLATFORMS[name]
    except KeyError:
        raise ValueError(
            f"platform {name!r} has no CI runner settings; add it to {TABLE} "
            f"(known: {sorted(PLATFORMS)})"
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
