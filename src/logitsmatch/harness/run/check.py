"""``logitsmatch check CASE [CASE...] | --all  [--platform P|auto] [--dry-run]``: run, compare,
report.

Every target runs in a run folder of its own (``runs/<case>@<platform>/<timestamp>-<pid>/``,
holding its prompts, output JSON, engine and rank logs, and its own reports). The combined
reports (terminal table, summary.md, junit.xml, plots) go to ``--report-dir``: by default the
target's parent folder for one target (``runs/<case>@<platform>/``, what CI collects), else a
new ``runs/all@<platform>/<timestamp>-<pid>/``. Exit 0 only when every target passed or was
skipped with a reason (too few devices, another platform, not recorded yet); 1 otherwise;
2 for bad input. Each case loads on its own: one that does not load is reported (naming the
file, the field and the value) and the others still run; the exit status is then 2.

``--dry-run`` loads and validates every case and target (flags, model binding, goldens,
``${VAR}``s, prompts) and prints what each target would do, starting no engine; exit 2 when
any is invalid, else 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from logitsmatch.harness.cases import (
    DEFAULT_CASES_DIR,
    Case,
    CaseError,
    CaseTarget,
    case_paths,
    find_case,
)
from logitsmatch.harness.cases.platforms import SCRATCH
from logitsmatch.harness.cases.schema import name_clashes
from logitsmatch.harness.reports import OutcomeStatus, TargetOutcome, write_reports
from logitsmatch.harness.reports.terminal import report_console
from logitsmatch.harness.run.dry_run import Plan, plan_target
from logitsmatch.harness.run.folders import DEFAULT_RUNS_ROOT, new_run_folder, target_parent
from logitsmatch.harness.run.machine import Machine, detect_machine, resolve_platform
from logitsmatch.harness.run.session import add_deadline_flag
from logitsmatch.harness.run.skips import unlisted_outcome
from logitsmatch.harness.run.target import run_target

INTERRUPTED = 130  # what a shell reports for a command ended by Ctrl-C (128 + SIGINT)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="logitsmatch check",
        description="Run cases on this machine and compare them with their goldens.",
    )
    p.add_argument("cases", nargs="*", help="case names (cases/<name>.yaml), files or folders")
    p.add_argument("--all", action="store_true", help="every case in --cases-dir")
    p.add_argument(
        "--all-if-none",
        action="store_true",
        help="with no case named, every case (what nox -s logitsmatch passes)",
    )
    p.add_argument(
        "--platform",
        default="auto",
        help="the platform to check (default auto: this machine's); targets of another "
        "platform than this machine's are skipped with a reason",
    )
    p.add_argument("--cases-dir", type=Path, default=DEFAULT_CASES_DIR)
    p.add_argument("--runs-root", type=Path, default=DEFAULT_RUNS_ROOT, help="default: runs/")
    p.add_argument("--report-dir", type=Path, help="where the combined reports go")
    add_deadline_flag(p)
    p.add_argument(
        "--golden",
        type=Path,
        metavar="PATH",
        help="compare the one case named with this output JSON instead of its golden",
    )
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="exit 0 even when every target was skipped (CI never passes this)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="load and validate every case and target, print what each would do, run nothing",
    )
    return p


def check_main(argv: list[str], machine: Machine | None = None) -> int:
    """Run the command (``machine``: this machine, detected when not given)."""
    # why intermixed: `nox -s logitsmatch -- --platform cpu CASE` puts names after options
    args = parser().parse_intermixed_args(argv)
    args.all = args.all or (args.all_if_none and not args.cases)
    if bool(args.cases) == args.all:
        print("logitsmatch check: give case names or --all (not both)", file=sys.stderr)
        return 2
    if args.golden is not None and (args.all or len(args.cases) != 1):
        print("logitsmatch check: --golden goes with exactly one case", file=sys.stderr)
        return 2
    try:
        specs = [str(p) for p in case_paths(args.cases_dir)] if args.all else args.cases
    except CaseError as exc:
        print(f"logitsmatch check: error: {exc}", file=sys.stderr)
        return 2
    cases, invalid = _load(specs, args.cases_dir)
    cases = [c.with_deadline(args.deadline_s) for c in cases]
    for message in invalid:
        print(f"logitsmatch check: error: {message}", file=sys.stderr)
    try:
        platform, machine = resolve_platform(args.platform, machine or detect_machine())
    except ValueError as exc:
        print(f"logitsmatch check: error: {exc}", file=sys.stderr)
        return 2
    if platform == SCRATCH:
        cases = [c.with_platform(SCRATCH) for c in cases]
    print(f"logitsmatch check: this machine is {machine.describe()}", file=sys.stderr)
    if args.dry_run:
        return _dry_run(cases, platform, machine, bad=bool(invalid))
    if args.all and not invalid and not any(platform in c.platforms for c in cases):
        print(
            f"logitsmatch check: no case in {args.cases_dir}/ runs on platform {platform!r}",
            file=sys.stderr,
        )
        return 1
    outcomes: list[TargetOutcome] = []
    interrupted = False
    try:
        for case in cases:
            outcomes.append(_one(case, platform, machine, args.runs_root, args.golden))
    except KeyboardInterrupt:  # why: the running engine's group is already killed (command.py)
        interrupted = True
    if interrupted and not outcomes:
        print("logitsmatch check: interrupted before any target finished", file=sys.stderr)
        return INTERRUPTED
    report_dir = args.report_dir or _default_report_dir(
        outcomes, platform, args.runs_root, len(cases)
    )
    files = write_reports(outcomes, report_dir, console=report_console())
    print(f"logitsmatch check: reports in {files.markdown.parent}", file=sys.stderr)
    if interrupted:
        print(
            f"logitsmatch check: interrupted: the report has the {len(outcomes)} of "
            f"{len(cases)} targets that finished",
            file=sys.stderr,
        )
        return INTERRUPTED
    if invalid:
        return 2
    if not any(o.status is not OutcomeStatus.SKIPPED for o in outcomes) and not args.allow_empty:
        print(
            f"logitsmatch check: error: no target ran ({len(outcomes)} skipped, reasons "
            "above): a run that checked nothing is not a pass (--allow-empty to accept it)",
            file=sys.stderr,
        )
        return 1
    return 0 if outcomes and all(o.ok for o in outcomes) else 1


def _load(specs: list[str], cases_dir: Path) -> tuple[list[Case], list[str]]:
    """(the cases that load, the errors of those that do not): one bad case stops no other."""
    cases: list[Case] = []
    errors: list[str] = []
    for spec in specs:
        try:
            cases.append(find_case(spec, cases_dir))
        except CaseError as exc:
            errors.append(str(exc))
    return cases, errors + name_clashes(cases)


def _dry_run(cases: list[Case], platform: str, machine: Machine, *, bad: bool) -> int:
    """Print every target's plan (of ``platform``, or all of the case's when it lists none
    of them); 2 when any case or target is invalid."""
    for case in cases:
        platforms = [platform] if platform in case.platforms else list(case.platforms)
        for name in platforms:
            plan = plan_target(CaseTarget(case, name), machine)
            bad = bad or plan.plan is Plan.INVALID
            print(plan.line())
    return 2 if bad else 0


def _one(
    case: Case, platform: str, machine: Machine, runs_root: Path, golden: Path | None
) -> TargetOutcome:
    if platform not in case.platforms:
        return unlisted_outcome(case, platform)
    result = run_target(CaseTarget(case, platform, golden), machine, runs_root=runs_root)
    outcome = result.outcome
    where = f" (run folder {result.run_dir})" if result.run_dir else ""
    first = f" {outcome.reason.splitlines()[0]}" if outcome.reason else ""
    print(f"logitsmatch: {outcome.id}: {outcome.status.upper()}{first}{where}", file=sys.stderr)
    return outcome


def _default_report_dir(
    outcomes: list[TargetOutcome], platform: str, runs_root: Path, asked: int
) -> Path:
    """One target asked for: its parent folder (what CI collects); else a new all@ folder."""
    if asked == 1 and len(outcomes) == 1:
        return target_parent(outcomes[0].id, runs_root=runs_root)
    return new_run_folder(target_parent(f"all@{platform}", runs_root=runs_root))
