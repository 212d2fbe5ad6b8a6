"""``logitsmatch record CASE [--platform P|auto]``: run a case and write its golden.

Refuses (exit 1, nothing written) when the engine crashed or passed its deadline, a request
failed, or any value is NaN/inf; refuses (exit 2) to record a platform other than this
machine's, or one the case does not list. Writes ``golden/<platform>/<case>.json`` with
``_provenance`` and prints what changed against the old golden (tokens, max |Δ logprob|).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from logitsmatch.harness.cases import DEFAULT_CASES_DIR, CaseError, CaseTarget, Expected, find_case
from logitsmatch.harness.cases.platforms import known_platform
from logitsmatch.harness.goldens.io import GoldenError, load_output, write_golden
from logitsmatch.harness.goldens.provenance import collect_provenance
from logitsmatch.harness.run import (
    EngineSession,
    Machine,
    add_deadline_flag,
    detect_machine,
    skip_reason,
)
from logitsmatch.harness.run.folders import DEFAULT_RUNS_ROOT, target_parent


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="logitsmatch record",
        description="Run a case on this machine and write its golden (with provenance).",
    )
    p.add_argument("case", help="case name (cases/<name>.yaml), file or Megatron folder")
    p.add_argument("--platform", default="auto", help="default auto: this machine's platform")
    p.add_argument("--cases-dir", type=Path, default=DEFAULT_CASES_DIR)
    p.add_argument("--runs-root", type=Path, default=DEFAULT_RUNS_ROOT, help="default: runs/")
    add_deadline_flag(p)
    return p


def record_main(argv: list[str], machine: Machine | None = None) -> int:
    """Run the command; 0 when the golden was written, 1 when refused, 2 for bad input."""
    args = parser().parse_args(argv)
    try:
        case = find_case(args.case, args.cases_dir).with_deadline(args.deadline_s)
    except CaseError as exc:
        return _fail(str(exc), 2)
    machine = machine or detect_machine()
    platform = machine.platform if args.platform == "auto" else args.platform
    try:
        known_platform(platform)
    except ValueError as exc:
        return _fail(str(exc), 2)
    if platform not in case.platforms:
        return _fail(
            f"{case.source}: PLATFORMS does not list {platform!r} (it lists "
            f"{', '.join(case.platforms)}); add it before recording",
            2,
        )
    target = CaseTarget(case, platform)
    why = skip_reason(target, machine)
    if why is not None:
        return _fail(f"cannot record {target.id} here: {why}", 2)
    try:
        session = EngineSession.start(target, target_parent(target.id, runs_root=args.runs_root))
        run = session.run_case("record")
    except CaseError as exc:
        return _fail(str(exc), 2)
    try:
        output = load_output(run.output_path, golden=False) if run.error is None else {}
        provenance = collect_provenance(
            platform,
            _portable(run.argv),
            device_name=machine.device_name,
            engine=case.engine,
        )
        if case.engine == "builtin":
            # why: check compares a golden only with runs of the same model (or stand-in).
            provenance["model"] = case.binding.run_model
        diff = write_golden(target.golden_path, output, provenance, run_error=run.error)
    except GoldenError as exc:
        session.log(f"{target.id}: record refused: {exc}")
        return _fail(str(exc), 1)
    print(diff.format())
    session.log(f"{target.id}: recorded {target.golden_path}")
    if target.expected != Expected.PASS and not case.megatron:
        print(
            f"note: {case.source} marks {platform} as {target.expected}; set "
            f"PLATFORMS.{platform}.expected to pass so that check compares with this golden",
            file=sys.stderr,
        )
    return 0


def _portable(argv: Sequence[str]) -> list[str]:
    """The command without this checkout's absolute paths and interpreter location."""
    here = os.getcwd() + os.sep
    return ["python" if w == sys.executable else w.replace(here, "") for w in argv]


def _fail(message: str, code: int) -> int:
    print(f"logitsmatch record: error: {message}", file=sys.stderr)
    return code
