"""ci/run_case.sh runs the target's nox session for real and always leaves a CI report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest

from logitsmatch.ci.report import outcome_from_session, write_fallback
from logitsmatch.ci.targets import Target
from logitsmatch.harness.reports import OutcomeStatus, TargetOutcome

PASSED, ERROR, SKIPPED = OutcomeStatus.PASSED, OutcomeStatus.ERROR, OutcomeStatus.SKIPPED

ROOT = Path(__file__).resolve().parents[3]
TOY_NOXFILE = textwrap.dedent(
    '''
    import os
    from pathlib import Path

    import nox

    @nox.session(venv_backend="none", name="logitsmatch-ok@cpu")
    def ok(session):
        """Passes and writes its own report where run_case.sh says."""
        run_dir = Path(os.environ["LOGITSMATCH_RUN_DIR"])
        (run_dir / "junit.xml").write_text("<testsuites name='from-the-harness'/>")
        (run_dir / "output.json").write_text("{}")

    @nox.session(venv_backend="none", name="logitsmatch-crash@cpu")
    def crash(session):
        """Dies before reporting."""
        session.error("engine rank 3 died: CUDA error: an illegal memory access")

    @nox.session(venv_backend="none", name="logitsmatch-big@dgx_h100")
    def big(session):
        """Too few devices here."""
        session.skip("needs 8 CUDA devices, found 0")

    @nox.session(venv_backend="none", name="logitsmatch-hang@cpu")
    def hang(session):
        """Never ends by itself."""
        session.run("sleep", "61.5", external=True)
    '''
)


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "checkout"
    (tree / "ci").mkdir(parents=True)
    shutil.copy2(ROOT / "ci" / "run_case.sh", tree / "ci" / "run_case.sh")
    (tree / "noxfile.py").write_text(TOY_NOXFILE)
    (tree / "src").symlink_to(ROOT / "src")
    return tree


def _run_case(tree: Path, target: Target, **env: str) -> subprocess.CompletedProcess:
    python_dir = Path(sys.executable).parent
    return subprocess.run(
        ["bash", str(tree / "ci" / "run_case.sh"), target.case, target.platform],
        cwd=tree.parent,
        env={**os.environ, "PATH": f"{python_dir}{os.pathsep}{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=90,
    )


def _junit_case(path: Path) -> ET.Element:
    cases = ET.parse(path).getroot().findall(".//testcase")
    assert len(cases) == 1
    return cases[0]


def test_a_passing_session_keeps_its_own_report(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    proc = _run_case(tree, Target("ok", "cpu"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = tree / "runs" / "ok@cpu"
    assert (run_dir / "junit.xml").read_text() == "<testsuites name='from-the-harness'/>"
    assert "Session logitsmatch-ok@cpu was successful" in (run_dir / "nox.log").read_text()
    assert (run_dir / "output.json").stat().st_mode & 0o002 == 0  # nothing writable by all


def test_a_crash_without_report_still_fails_with_a_junit_error(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    proc = _run_case(tree, Target("crash", "cpu"))
    assert proc.returncode == 1
    error = _junit_case(tree / "runs" / "crash@cpu" / "junit.xml").find("error")
    assert error is not None and "illegal memory access" in (error.text or "")
    summary = (tree / "runs" / "crash@cpu" / "summary.md").read_text()
    assert "crash@cpu" in summary and "error" in summary


def test_a_skipped_session_is_a_junit_skip_with_its_reason(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    proc = _run_case(tree, Target("big", "dgx_h100"))
    assert proc.returncode == 0
    skipped = _junit_case(tree / "runs" / "big@dgx_h100" / "junit.xml").find("skipped")
    assert skipped is not None and skipped.get("message") == "needs 8 CUDA devices, found 0"


def test_a_hanging_session_is_stopped_at_its_deadline(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    proc = _run_case(tree, Target("hang", "cpu"), LOGITSMATCH_CASE_TIMEOUT="2")
    assert proc.returncode == 124
    error = _junit_case(tree / "runs" / "hang@cpu" / "junit.xml").find("error")
    assert error is not None and "2 s deadline" in error.get("message", "")
    # The session's own child (`sleep 61.5`, a stand-in for engine ranks) is gone too.
    cmdlines = [p.info["cmdline"] or [] for p in psutil.process_iter(["cmdline"])]
    assert not [c for c in cmdlines if c[:1] and c[0].endswith("sleep") and c[1:] == ["61.5"]]


def test_usage_error() -> None:
    proc = subprocess.run(
        ["bash", str(ROOT / "ci" / "run_case.sh"), "only-one"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "usage: ci/run_case.sh CASE PLATFORM" in proc.stderr


@pytest.mark.parametrize(
    ("status", "log", "expected"),
    [
        (0, "nox > Session logitsmatch-a@cpu was successful.\n", PASSED),
        (0, "nox > Session logitsmatch-a@cpu skipped: no golden yet.\n", SKIPPED),
        (0, "nox > Session logitsmatch-b@cpu skipped: not this one.\n", PASSED),
        (137, "", ERROR),
        (1, "\x1b[31mTraceback\x1b[0m\nKeyError: 'x'\n", ERROR),
    ],
)
def test_outcome_from_session(status: int, log: str, expected: str) -> None:
    outcome = outcome_from_session(Target("a", "cpu"), status, log, 1.5, 60)
    assert outcome.status == expected
    if status == 1:
        assert outcome.reason.endswith("Traceback\nKeyError: 'x'")


def test_fallback_never_overwrites_the_harness_report(tmp_path: Path) -> None:
    (tmp_path / "junit.xml").write_text("mine")
    assert write_fallback(tmp_path, TargetOutcome("a", "cpu", PASSED)) == []
    assert (tmp_path / "junit.xml").read_text() == "mine"
