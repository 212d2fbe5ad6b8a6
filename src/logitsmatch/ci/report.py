"""A CI report for a case target whose session wrote none (it crashed, timed out, was skipped).

`ci/run_case.sh` calls this after `nox -s logitsmatch-<case>@<platform>`. When the session
wrote runs/<target>/junit.xml itself, that report stands; otherwise this writes junit.xml and
summary.md there from nox's exit status and log, so a target never vanishes from the CI test
tab because the harness did not get as far as reporting.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from logitsmatch.ci.targets import Target
from logitsmatch.harness.reports import OutcomeStatus, TargetOutcome
from logitsmatch.harness.reports.junit import write_junit
from logitsmatch.harness.reports.markdown import render_markdown

TIMEOUT_STATUSES = (124, 137)  # `timeout` exits 124, or 137 after its --kill-after SIGKILL
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SKIPPED = re.compile(r"nox > Session (\S+) skipped: (.*)$")


def outcome_from_session(
    target: Target, status: int, log_text: str, duration_s: float, timeout_s: float
) -> TargetOutcome:
    """How the session ended, read from its exit status and its nox log."""
    lines = [_ANSI.sub("", line).rstrip() for line in log_text.splitlines()]
    if status in TIMEOUT_STATUSES:
        reason = f"still running after the {timeout_s:.0f} s deadline (exit {status}), stopped"
        return TargetOutcome(
            target.case, target.platform, OutcomeStatus.ERROR, reason, None, duration_s
        )
    if status == 0:
        for line in lines:
            match = _SKIPPED.search(line)
            if match and match.group(1) == target.session:
                reason = match.group(2).rstrip(".")
                return TargetOutcome(
                    target.case, target.platform, OutcomeStatus.SKIPPED, reason, None, duration_s
                )
        return TargetOutcome(
            target.case, target.platform, OutcomeStatus.PASSED, "", None, duration_s
        )
    tail = [line for line in lines if line.strip()][-20:]
    reason = f"session exited {status} without a report; last log lines:\n" + "\n".join(tail)
    return TargetOutcome(
        target.case, target.platform, OutcomeStatus.ERROR, reason, None, duration_s
    )


def write_fallback(run_dir: Path, outcome: TargetOutcome) -> list[Path]:
    """Write junit.xml and summary.md into `run_dir` unless the session wrote its own junit."""
    if (run_dir / "junit.xml").exists():
        return []
    junit = write_junit(run_dir / "junit.xml", [outcome])
    summary = run_dir / "summary.md"
    summary.write_text(render_markdown([outcome]), encoding="utf-8")
    return [junit, summary]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI used by ci/run_case.sh; prints what it wrote."""
    parser = argparse.ArgumentParser(prog="python -m logitsmatch.ci.report")
    parser.add_argument("case")
    parser.add_argument("platform")
    parser.add_argument("--status", type=int, required=True, help="the session's exit status")
    parser.add_argument("--seconds", type=float, required=True, help="how long it ran")
    parser.add_argument("--timeout", type=float, required=True, help="its deadline, seconds")
    parser.add_argument("--log", type=Path, required=True, help="the session's nox log")
    parser.add_argument("--run-dir", type=Path, required=True, help="runs/<case>@<platform>")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    target = Target(args.case, args.platform)
    log_text = args.log.read_text(errors="replace") if args.log.exists() else ""
    outcome = outcome_from_session(target, args.status, log_text, args.seconds, args.timeout)
    for path in write_fallback(args.run_dir, outcome):
        print(f"ci_report: {outcome.status} {target.id}: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
