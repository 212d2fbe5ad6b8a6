"""The `docker run` of one case target: what every CI case job runs, and `nox -s repro` too.

CI jobs (GitLab and GitHub) run `CI_COMMAND` below on the runner host; a person runs
`nox -s repro -- CASE [--platform P] [--image IMAGE]`. Both end in `main()` -> `repro_command()`,
so the container, flags, env, mounts, user and entry are the same by construction, and
tests/unit/ci checks the CI files call it this way. The checkout is mounted read-only over the
image's copy (a local change is tried without rebuilding); only runs/ is writable.

Stdlib only: CI runners import this with a bare `python3` and `PYTHONPATH=src`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from logitsmatch.ci.runners import ci_platform, image_ref
from logitsmatch.ci.targets import Target, list_targets
from logitsmatch.process_group import kill_group

# The image's non-root user (Dockerfile ARG APP_UID/APP_GID; a test checks they agree): the
# container's when the caller is root; otherwise the container runs as the caller, so that
# what it writes in runs/ is the caller's and no folder has to be writable by all.
IMAGE_USER = "1000:1000"
WORKDIR = "/workspace"
ENTRY = f"{WORKDIR}/ci/run_case.sh"
# Where `nox -s repro` looks for an image when none is named: one built locally with
# `docker build --target <variant> -t logitsmatch:<variant>-$(git rev-parse HEAD) .`
LOCAL_REPOSITORY = "logitsmatch"
# What a CI case job runs on its runner, from the checkout root, with LOGITSMATCH_IMAGE,
# LOGITSMATCH_PLATFORM and LOGITSMATCH_CASE set by the job.
CI_COMMAND = (
    "PYTHONPATH=src python3 -m logitsmatch.ci.repro"
    ' --image "$LOGITSMATCH_IMAGE" --platform "$LOGITSMATCH_PLATFORM" "$LOGITSMATCH_CASE"'
)
# The container must finish (and write its JUnit/summary) before CI kills the job.
_TIMEOUT_MARGIN_S = 300
NO_DOCKER_EXIT = 3


def container_env(target: Target, image: str) -> dict[str, str]:
    """The env every run of `target` gets: the image (for provenance and the repro hint) and
    the in-container deadline. Determinism env (NCCL_ALGO, ...) comes from the case itself."""
    platform = ci_platform(target.platform)
    return {
        "LOGITSMATCH_CASE_TIMEOUT": str(platform.timeout_minutes * 60 - _TIMEOUT_MARGIN_S),
        "LOGITSMATCH_IMAGE": image,
    }


def container_user(uid: int | None = None, gid: int | None = None) -> str:
    """``uid:gid`` of the caller (this process by default), or the image's user for root."""
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    return IMAGE_USER if uid == 0 else f"{uid}:{gid}"


def repro_command(
    case: str,
    platform: str,
    image_tag: str,
    checkout_dir: Path,
    env: Mapping[str, str],
    user: str | None = None,
) -> list[str]:
    """The exact `docker run` argv that runs `case` on `platform` in image `image_tag`, as
    ``user`` (default: ``container_user()``)."""
    target = Target(case, platform)
    settings = ci_platform(platform)
    checkout = Path(checkout_dir).resolve()
    user = user or container_user()
    argv = ["docker", "run", "--rm", "--init", "--user", user, *settings.docker_args]
    if user != IMAGE_USER:
        # why: the image's HOME belongs to its own user; nothing is kept there
        env = {**env, "HOME": "/tmp"}
    for key in sorted(env):
        argv += ["--env", f"{key}={env[key]}"]
    argv += [
        "--volume",
        f"{checkout}:{WORKDIR}:ro",
        "--volume",
        f"{checkout / 'runs'}:{WORKDIR}/runs",
        "--workdir",
        WORKDIR,
        "--entrypoint",
        ENTRY,
        image_tag,
        target.case,
        target.platform,
    ]
    return argv


def native_command(target: Target) -> list[str]:
    """The same case without a container: the nox session itself."""
    return ["nox", "-s", target.session]


def _run(argv: Sequence[str], deadline_s: float, cwd: Path | None = None) -> int:
    """Run to completion within `deadline_s`; a run past it is killed and reported.

    The command runs in a session of its own, and whatever way this ends (the deadline, a
    Ctrl-C here) its whole process group goes: `nox` and the engine ranks it started, or the
    `docker run` client.
    """
    proc = subprocess.Popen(list(argv), cwd=cwd, start_new_session=True)
    try:
        return proc.wait(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        print(f"repro: {argv[0]} still running after {deadline_s:.0f} s, killed", file=sys.stderr)
        return 124
    finally:
        kill_group(proc)


def docker_problem(timeout_s: float = 30.0) -> str | None:
    """None when a Docker engine answers `docker info`; otherwise why not, in one line."""
    try:
        proc = subprocess.run(
            ["docker", "info"], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except FileNotFoundError:
        return "no `docker` command on PATH"
    except subprocess.TimeoutExpired:
        return f"`docker info` did not answer within {timeout_s:.0f} s"
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        return f"`docker info` exited {proc.returncode}: {lines[-1] if lines else 'no output'}"
    return None


def prepare_runs_dir(checkout: Path, user: str | None = None) -> Path:
    """Create runs/ (mode 0755) writable for the container's ``user``: the caller's own
    folder, or for root callers (whose container runs as the image's user) handed to it."""
    runs = checkout / "runs"
    runs.mkdir(mode=0o755, exist_ok=True)
    user = user or container_user()
    if os.getuid() == 0:
        uid, gid = (int(part) for part in user.split(":"))
        # why all of it: the container rewrites the files of an earlier run of its target
        os.chown(runs, uid, gid)
        for top, folders, files in os.walk(runs):
            for name in folders + files:
                os.lchown(os.path.join(top, name), uid, gid)
    return runs


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m logitsmatch.ci.repro",
        description="Run (or print) the docker run of a case target, exactly as CI does.",
    )
    parser.add_argument("case", help="case name (cases/<case>.yaml)")
    parser.add_argument("--platform", help="platform; default: the case's only one")
    parser.add_argument(
        "--image",
        help="image reference (the CI job prints it); default: a local build of HEAD, "
        f"{LOCAL_REPOSITORY}:<variant>-<commit>",
    )
    parser.add_argument("--checkout", type=Path, default=Path.cwd(), help="checkout to mount")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--print", action="store_true", help="only print the docker command")
    mode.add_argument("--native", action="store_true", help="run the nox session here instead")
    return parser.parse_args(argv)


def _pick_target(case: str, platform: str | None, checkout: Path) -> Target:
    if platform is not None:
        return Target(case, platform)
    platforms = sorted(t.platform for t in list_targets(checkout) if t.case == case)
    if len(platforms) != 1:
        raise SystemExit(
            f"repro: case {case!r} runs on {platforms or 'no platform nox lists'}; "
            "name one with --platform"
        )
    return Target(case, platforms[0])


def _head_commit(checkout: Path) -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        raise SystemExit(f"repro: no --image given and `git rev-parse HEAD` failed in {checkout}")
    return proc.stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print the docker command, then run it (or say why not and offer the native one)."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    checkout = args.checkout.resolve()
    target = _pick_target(args.case, args.platform, checkout)
    native = shlex.join(native_command(target))
    deadline_s = ci_platform(target.platform).timeout_minutes * 60
    if args.native:
        print(f"$ {native}", flush=True)
        # why: `python -m nox` with this interpreter, which has nox; `nox` may not be on PATH
        return _run([sys.executable, "-m", *native_command(target)], deadline_s, cwd=checkout)
    variant = ci_platform(target.platform).image_variant
    image = args.image or image_ref(LOCAL_REPOSITORY, variant, _head_commit(checkout))
    command = repro_command(
        target.case, target.platform, image, checkout, container_env(target, image)
    )
    print(f"$ {shlex.join(command)}", flush=True)
    if args.print:
        return 0
    problem = docker_problem()
    if problem is not None:
        print(
            f"repro: no Docker engine here ({problem}), so the command above was not run.\n"
            f"Run the case natively instead (same session, this machine's torch):\n  {native}\n"
            "or: nox -s repro -- "
            f"{shlex.join([target.case, '--platform', target.platform, '--native'])}",
            file=sys.stderr,
        )
        return NO_DOCKER_EXIT
    prepare_runs_dir(checkout)
    return _run(command, deadline_s)


if __name__ == "__main__":
    sys.exit(main())
