"""The GitHub and GitLab matrices: one job per case target nox lists, none missing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from logitsmatch.ci.matrix import (
    github_matrix,
    gitlab_child_pipeline,
    render_github_outputs,
    render_gitlab,
)
from logitsmatch.ci.runners import ci_platform, image_ref
from logitsmatch.ci.targets import Target, list_targets
from logitsmatch.harness.cases import load_all
from logitsmatch.harness.cases.platforms import PLATFORMS

ROOT = Path(__file__).resolve().parents[3]
TARGETS = [
    Target("tiny_tp2", "cpu"),
    Target("smollm2_pp8", "cpu"),
    Target("smollm2_pp8", "dgx_h100"),
]


def _all_nox_sessions(root: Path) -> list[str]:
    """Every session `nox -l` shows, selected (*) or not (-): independent of the -k listing."""
    proc = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "--no-color"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"`nox -l` in {root} failed: {proc.stdout}{proc.stderr}"
    return [m.group(1) for m in re.finditer(r"^[*-] (\S+)", proc.stdout, re.MULTILINE)]


def _gitlab_target_jobs(pipeline: dict) -> dict[str, dict]:
    return {name: job for name, job in pipeline.items() if name.startswith("logitsmatch-")}


def test_repo_ci_matrices_list_exactly_the_targets_nox_lists() -> None:
    every = sorted(
        Target(*s[len("logitsmatch-") :].rsplit("@", 1))
        for s in _all_nox_sessions(ROOT)
        if s.startswith("logitsmatch-") and "@" in s
    )
    # Megatron-LM's corpus has sessions of the same naming, outside the matrix (nox -s megatron).
    corpus = {c.name for c in load_all(ROOT / "tests" / "data" / "megatron")}
    listed = [t for t in every if t.case not in corpus]
    assert listed, "the noxfile defines no logitsmatch-<case>@<platform> session"
    assert {t.case for t in every} - {t.case for t in listed} == corpus
    # The command CI runs to list them loses none...
    ci_listed = list_targets(ROOT)
    assert ci_listed == listed
    # ...every case file's platforms are there, and nothing else...
    from_cases = sorted(Target(c.name, p) for c in load_all(ROOT / "cases") for p in c.platforms)
    assert listed == from_cases
    # ...and each becomes exactly one job in both CI systems.
    github = github_matrix(ci_listed, "ghcr.io/owner/repo", "0" * 40)["targets"]["include"]
    assert sorted(Target(e["case"], e["platform"]) for e in github) == listed
    assert [e["target"] for e in github] == [t.id for t in listed]
    child = yaml.safe_load(render_gitlab(gitlab_child_pipeline(ci_listed)))
    jobs = _gitlab_target_jobs(child)
    assert sorted(jobs) == sorted(t.session for t in listed)
    for target in listed:
        variables = jobs[target.session]["variables"]
        assert (variables["LOGITSMATCH_CASE"], variables["LOGITSMATCH_PLATFORM"]) == (
            target.case,
            target.platform,
        )


def test_github_matrix_places_each_target_on_its_runner_and_image() -> None:
    matrix = github_matrix(TARGETS, "ghcr.io/Owner/Repo", "abc123")
    by_target = {e["target"]: e for e in matrix["targets"]["include"]}
    assert set(by_target) == {t.id for t in TARGETS}
    gpu = by_target["smollm2_pp8@dgx_h100"]
    assert gpu["runs_on"][0] == "self-hosted" and "dgx_h100" in gpu["runs_on"]
    assert gpu["image"] == "ghcr.io/owner/repo:gpu-abc123"
    assert by_target["tiny_tp2@cpu"]["runs_on"] == ["ubuntu-24.04"]
    assert by_target["tiny_tp2@cpu"]["image"] == "ghcr.io/owner/repo:cpu-abc123"
    # The images built are exactly the ones the targets run in.
    images = {e["image"] for e in matrix["images"]["include"]}
    assert images == {e["image"] for e in by_target.values()}


def test_github_outputs_are_one_line_per_key() -> None:
    text = render_github_outputs(github_matrix(TARGETS[:1], "ghcr.io/o/r", "c"))
    lines = text.splitlines()
    assert [line.split("=", 1)[0] for line in lines] == ["images", "targets"]
    assert json.loads(lines[1].split("=", 1)[1])["include"][0]["case"] == "tiny_tp2"


def test_gitlab_child_builds_only_the_images_needed() -> None:
    cpu_only = gitlab_child_pipeline([Target("tiny_tp2", "cpu")])
    assert "build-image-cpu" in cpu_only and "build-image-gpu" not in cpu_only
    both = gitlab_child_pipeline(TARGETS)
    gpu_job = both["logitsmatch-smollm2_pp8@dgx_h100"]
    assert gpu_job["needs"] == ["build-image-gpu"]
    assert gpu_job["tags"] == list(ci_platform("dgx_h100").gitlab_tags)
    assert ".logitsmatch-dind" not in gpu_job["extends"]
    # The case job pulls the very tag its build job pushes.
    for variant in ("cpu", "gpu"):
        pushed = both[f"build-image-{variant}"]["variables"]["LOGITSMATCH_IMAGE"]
        assert pushed == image_ref("$CI_REGISTRY_IMAGE", variant, "$CI_COMMIT_SHA")
    assert gpu_job["variables"]["LOGITSMATCH_IMAGE"] == image_ref(
        "$CI_REGISTRY_IMAGE", "gpu", "$CI_COMMIT_SHA"
    )


def test_unknown_platform_and_empty_listing_fail_loudly() -> None:
    with pytest.raises(ValueError, match="platform 'tpu_v5' has no CI runner settings"):
        gitlab_child_pipeline([Target("a", "tpu_v5")])
    with pytest.raises(ValueError, match="nox lists no logitsmatch"):
        github_matrix([], "ghcr.io/o/r", "c")


def test_matrix_cli_reads_the_nox_listing(tmp_path: Path) -> None:
    listing = json.dumps([{"session": "logitsmatch"}] + [{"session": t.session} for t in TARGETS])
    proc = subprocess.run(
        [sys.executable, "-m", "logitsmatch.ci.matrix", "gitlab"],
        input=listing,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout.startswith("# Generated by")
    assert sorted(_gitlab_target_jobs(yaml.safe_load(proc.stdout))) == sorted(
        t.session for t in TARGETS
    )
    empty = subprocess.run(
        [
            sys.executable,
            "-m",
            "logitsmatch.ci.matrix",
            *("github", "--repository", "r", "--commit", "c"),
        ],
        input="[]",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert empty.returncode == 1 and "nox lists no logitsmatch" in empty.stderr


def test_every_platform_has_a_runner_in_both_systems() -> None:
    for platform in PLATFORMS.values():
        assert platform.github_runs_on
        assert platform.gitlab_dind or platform.gitlab_tags
