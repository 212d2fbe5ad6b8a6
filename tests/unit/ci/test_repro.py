"""`nox -s repro` and the CI case jobs run the same `docker run` (compared as strings)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from logitsmatch.ci.matrix import github_matrix, gitlab_child_pipeline
from logitsmatch.ci.repro import (
    CI_COMMAND,
    ENTRY,
    IMAGE_USER,
    NO_DOCKER_EXIT,
    _run,
    container_env,
    container_user,
    repro_command,
)
from logitsmatch.ci.runners import ci_platform, image_ref
from logitsmatch.ci.targets import Target

ROOT = Path(__file__).resolve().parents[3]
CPU = Target("tiny_tp2", "cpu")
GPU = Target("smollm2_pp8", "dgx_h100")
IMAGE = "registry.example/logitsmatch:gpu-0123abcd"
# A stand-in for the Docker engine this machine lacks: `docker info` answers, `docker run`
# records its argv (NUL-separated) and exits 0.
DOCKER_SHIM = """#!/usr/bin/env bash
if [ "$1" = info ]; then exit 0; fi
printf '%s\\0' "$@" > "$DOCKER_ARGV_FILE"
"""


def _checkout(tmp_path: Path) -> Path:
    """A checkout the commands can run in: src/ from this repo, nothing else."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "src").symlink_to(ROOT / "src")
    return checkout


def _shim_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "docker"
    shim.write_text(DOCKER_SHIM)
    shim.chmod(0o755)
    python_dir = Path(sys.executable).parent
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{python_dir}{os.pathsep}{os.environ['PATH']}",
        "DOCKER_ARGV_FILE": str(tmp_path / "docker-argv"),
    }


def _recorded(tmp_path: Path) -> list[str]:
    data = (tmp_path / "docker-argv").read_bytes().decode()
    (tmp_path / "docker-argv").unlink()
    return ["docker", *data.split("\0")[:-1]]


def _repro(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    """`python -m logitsmatch.ci.repro ARGS`: what the `nox -s repro` session runs."""
    return subprocess.run(
        [sys.executable, "-m", "logitsmatch.ci.repro", *args],
        env={**env, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def _run_ci_command(checkout: Path, env: dict[str, str], variables: dict[str, str]) -> None:
    # python3 may be another interpreter than this one: point it at ours.
    command = CI_COMMAND.replace("python3", shlex.quote(sys.executable), 1)
    subprocess.run(
        ["bash", "-c", command],
        cwd=checkout,
        env={**env, **variables},
        check=True,
        timeout=60,
        capture_output=True,
    )


def test_gpu_command_has_the_gpu_flags_mounts_user_and_entry(tmp_path: Path) -> None:
    argv = repro_command(GPU.case, GPU.platform, IMAGE, tmp_path, container_env(GPU, IMAGE))
    text = shlex.join(argv)
    assert argv[:4] == ["docker", "run", "--rm", "--init"]
    assert "--gpus all --ipc=host --ulimit memlock=-1 --ulimit stack=67108864" in text
    assert f"--user {container_user()}" in text
    assert f"--volume {tmp_path.resolve()}:/workspace:ro" in text
    assert f"--volume {tmp_path.resolve() / 'runs'}:/workspace/runs" in text
    assert f"--env LOGITSMATCH_IMAGE={IMAGE}" in text
    assert "--env LOGITSMATCH_CASE_TIMEOUT=6900" in text
    assert argv[-5:] == ["--entrypoint", ENTRY, IMAGE, GPU.case, GPU.platform]
    cpu = repro_command(CPU.case, CPU.platform, IMAGE, tmp_path, {})
    assert "--gpus" not in cpu and "--shm-size=2g" in cpu


def test_ci_files_run_exactly_the_repro_command() -> None:
    templates = yaml.safe_load((ROOT / "ci" / "gitlab" / "templates.yml").read_text())
    assert templates[".logitsmatch-case"]["script"] == [CI_COMMAND]
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "logitsmatch.yml").read_text())
    cases = workflow["jobs"]["cases"]
    runs = [
        step["run"] for step in cases["steps"] if step.get("name") == "Run the case in its image"
    ]
    assert runs == [CI_COMMAND]
    assert cases["env"] == {
        "LOGITSMATCH_IMAGE": "${{ matrix.image }}",
        "LOGITSMATCH_PLATFORM": "${{ matrix.platform }}",
        "LOGITSMATCH_CASE": "${{ matrix.case }}",
    }


@pytest.mark.parametrize("target", [CPU, GPU], ids=lambda t: t.id)
def test_ci_jobs_and_repro_run_the_same_docker_command(tmp_path: Path, target: Target) -> None:
    checkout = _checkout(tmp_path)
    env = _shim_env(tmp_path)
    expected = repro_command(
        target.case, target.platform, IMAGE, checkout, container_env(target, IMAGE)
    )
    # GitLab: the generated job's variables, with the registry variables GitLab would expand.
    job = gitlab_child_pipeline([target])[target.session]
    variables = dict(job["variables"])
    variables["LOGITSMATCH_IMAGE"] = IMAGE
    assert job["variables"]["LOGITSMATCH_IMAGE"].startswith("$CI_REGISTRY_IMAGE:")
    _run_ci_command(checkout, env, variables)
    gitlab = _recorded(tmp_path)
    # GitHub: the matrix entry the job's env reads.
    entry = github_matrix([target], "Registry.example/LogitsMatch", "0123abcd")
    entry = entry["targets"]["include"][0]
    variant = ci_platform(target.platform).image_variant
    assert entry["image"] == image_ref("registry.example/logitsmatch", variant, "0123abcd")
    _run_ci_command(
        checkout,
        env,
        {
            "LOGITSMATCH_IMAGE": entry["image"],
            "LOGITSMATCH_PLATFORM": entry["platform"],
            "LOGITSMATCH_CASE": entry["case"],
        },
    )
    github = _recorded(tmp_path)
    # A person: the module `nox -s repro -- CASE --platform P --image I` runs.
    _repro(
        *(target.case, "--platform", target.platform, "--image", IMAGE),
        *("--checkout", str(checkout)),
        env=env,
    )
    local = _recorded(tmp_path)
    assert shlex.join(gitlab) == shlex.join(expected)
    assert shlex.join(local) == shlex.join(expected)
    github_expected = repro_command(
        target.case,
        target.platform,
        entry["image"],
        checkout,
        container_env(target, entry["image"]),
    )
    assert shlex.join(github) == shlex.join(github_expected)
    assert oct((checkout / "runs").stat().st_mode & 0o777) == oct(0o755)


def test_nox_repro_session_runs_the_same_command(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    env = _shim_env(tmp_path)
    posargs = [GPU.case, "--platform", GPU.platform, "--image", IMAGE, "--checkout", str(checkout)]
    proc = subprocess.run(
        [sys.executable, "-m", "nox", "-s", "repro", "--", *posargs],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = repro_command(GPU.case, GPU.platform, IMAGE, checkout, container_env(GPU, IMAGE))
    assert _recorded(tmp_path) == expected
    assert f"$ {shlex.join(expected)}" in proc.stdout + proc.stderr


def test_print_mode_prints_the_command_and_runs_nothing(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    proc = _repro(
        *(CPU.case, "--print", "--platform", CPU.platform, "--image", IMAGE),
        *("--checkout", str(checkout)),
        env=_shim_env(tmp_path),
    )
    expected = repro_command(CPU.case, CPU.platform, IMAGE, checkout, container_env(CPU, IMAGE))
    assert proc.stdout == f"$ {shlex.join(expected)}\n"
    assert not (tmp_path / "docker-argv").exists()


def test_without_docker_it_says_so_and_offers_the_native_command(tmp_path: Path) -> None:
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    proc = _repro(
        *(CPU.case, "--platform", CPU.platform, "--image", IMAGE),
        *("--checkout", str(_checkout(tmp_path))),
        env={"PATH": str(empty_bin)},
        check=False,
    )
    assert proc.returncode == NO_DOCKER_EXIT
    assert "no Docker engine here (no `docker` command on PATH)" in proc.stderr
    assert "nox -s logitsmatch-tiny_tp2@cpu" in proc.stderr
    assert not (tmp_path / "checkout" / "runs").exists()


def test_with_a_docker_cli_but_no_engine(tmp_path: Path) -> None:
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    if probe.returncode == 0:
        pytest.skip("a Docker engine answers here; this path is for machines without one")
    proc = _repro(
        *(CPU.case, "--platform", CPU.platform, "--image", IMAGE),
        *("--checkout", str(_checkout(tmp_path))),
        env=dict(os.environ),
        check=False,
    )
    assert proc.returncode == NO_DOCKER_EXIT
    assert re.search(r"`docker info` exited \d+: .*daemon", proc.stderr), proc.stderr


def test_default_image_is_a_local_build_of_head(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(checkout)]
    subprocess.run([*git, "init", "-q"], check=True, timeout=30)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True, timeout=30)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    proc = _repro(
        *(GPU.case, "--print", "--platform", GPU.platform, "--checkout", str(checkout)),
        env=dict(os.environ),
    )
    assert f" logitsmatch:gpu-{head} {GPU.case} {GPU.platform}\n" in proc.stdout


def test_image_user_entry_and_tools_agree_with_the_dockerfile() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    uids = set(re.findall(r"^ARG APP_UID=(\d+)$", dockerfile, re.MULTILINE))
    gids = set(re.findall(r"^ARG APP_GID=(\d+)$", dockerfile, re.MULTILINE))
    assert len(uids) == len(gids) == 1 and f"{uids.pop()}:{gids.pop()}" == IMAGE_USER
    stages = set(re.findall(r"^FROM \S+ AS ([\w-]+)$", dockerfile, re.MULTILINE))
    assert stages == {"cpu", "gpu"}
    assert set(re.findall(r"^WORKDIR (\S+)$", dockerfile, re.MULTILINE)) == {"/workspace"}
    entry = ROOT / ENTRY.removeprefix("/workspace/")
    assert entry.is_file() and os.access(entry, os.X_OK)
    assert os.access(ROOT / "ci" / "entrypoint.sh", os.X_OK)
    nox_pins = set(re.findall(r"^ARG NOX_VERSION=(\S+)$", dockerfile, re.MULTILINE))
    assert {f"nox=={v}" for v in nox_pins} == {
        line
        for line in (ROOT / "ci" / "tools.txt").read_text().splitlines()
        if line.startswith("nox")
    }
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {"runs", ".git", ".nox"} <= set(ignored)
    assert not {"cases", "golden", "ci", "src"} & set(ignored)


def test_a_run_past_its_deadline_is_stopped_with_its_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    # A leader that starts a child of its own (as nox starts engine ranks), then both sleep.
    script = f"sleep 60 & echo $! > {shlex.quote(str(pid_file))}; wait"
    assert _run(["bash", "-c", script], deadline_s=2) == 124
    child = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_the_container_runs_as_the_caller_and_for_root_as_the_image_user(tmp_path: Path) -> None:
    assert container_user(0, 0) == IMAGE_USER
    assert container_user(1001, 121) == "1001:121"
    as_caller = shlex.join(repro_command(CPU.case, CPU.platform, IMAGE, tmp_path, {}, "1001:121"))
    assert "--user 1001:121" in as_caller and "--env HOME=/tmp" in as_caller
    as_image = shlex.join(repro_command(CPU.case, CPU.platform, IMAGE, tmp_path, {}, IMAGE_USER))
    assert f"--user {IMAGE_USER}" in as_image and "HOME=" not in as_image
