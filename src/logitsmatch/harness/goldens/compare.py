"""``logitsmatch compare GOLDEN CURRENT [--case CASE]``: compare two output JSON files."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from logitsmatch.harness.cases import Case, CaseError, find_case
from logitsmatch.harness.cases.lookup import CaseNotFound
from logitsmatch.harness.cases.schema import megatron_golden_platform
from logitsmatch.harness.goldens.io import GoldenError, load_output
from logitsmatch.harness.goldens.provenance import environment_changes
from logitsmatch.harness.judge import compare
from logitsmatch.harness.reports import outcome_from_verdict, print_report, write_reports
from logitsmatch.harness.reports.terminal import report_console


def compare_main(argv: list[str]) -> int:
    """Run the command; 0 when every compared request passed, 1 when one failed, 2 on bad input."""
    parser = argparse.ArgumentParser(
        prog="logitsmatch compare",
        description="Compare a run's output JSON with a golden (tokens exact, logprobs within "
        "the case's tolerance, ...). Exit 0 only when every request passed.",
    )
    parser.add_argument("golden", type=Path, help="golden JSON (golden/<platform>/<case>.json)")
    parser.add_argument("current", type=Path, help="the run's output JSON")
    parser.add_argument(
        "--case",
        help="case name (cases/<name>.yaml), case file or Megatron "
        "case folder: its METRICS and TOLERANCES apply (default: tokens, "
        "logprobs, text; abs 1e-3)",
    )
    parser.add_argument(
        "--platform", help="platform name for the report (default: from the golden's path)"
    )
    parser.add_argument(
        "--report-dir", type=Path, help="also write junit.xml, summary.md and plots here"
    )
    args = parser.parse_args(argv)
    try:
        case = _find_case(args.case) if args.case else None
        golden = load_output(args.golden, golden=True)
        current = load_output(args.current, golden=False)
    except (CaseError, GoldenError) as exc:
        print(f"logitsmatch compare: error: {exc}", file=sys.stderr)
        return 2
    name = case.name if case else args.golden.stem
    platform = args.platform or _platform_of(args.golden, case)
    verdict = compare(
        golden,
        current,
        case.tolerances if case else None,
        metrics=case.metrics if case else None,
        case=name,
        platform=platform,
    )
    outcome = outcome_from_verdict(verdict)
    if not verdict.passed and "_provenance" in current:
        # Two recordings (e.g. one platform's golden against another's): name what differed.
        changes = environment_changes(golden.get("_provenance") or {}, current["_provenance"])
        outcome = replace(outcome, environment=tuple(changes))
    console = report_console()
    if args.report_dir:
        write_reports([outcome], args.report_dir, console=console)
    else:
        print_report([outcome], console)
    return 0 if verdict.passed else 1


def _find_case(spec: str) -> Case:
    try:
        return find_case(spec)
    except CaseNotFound as exc:
        raise CaseError(f"--case {spec}: no such case ({exc})") from None


def _platform_of(golden: Path, case: Case | None) -> str:
    platform = megatron_golden_platform(golden.name)
    if platform is not None:
        return platform
    parent = golden.resolve().parent.name
    if case is None or parent in case.platforms:
        return parent
    return "unknown"
