"""``logitsmatch record CASE [--platform P|auto] [--allow-dirty]``: run a case, write its golden.

Records nothing that ``check`` would not trust. Refuses (exit 1, nothing written) when the
engine crashed or passed its deadline, a request failed, any value is NaN/inf, the run did not
answer exactly the case's prompts in order with every listed metric (``audit.py``), or a case
with N_REPEAT > 1 gave other numbers on a repeat (bit for bit when DETERMINISTIC, else beyond
its tolerances): the case runs N_REPEAT times, as check runs it. Refuses (exit 2) a platform
other than this machine's or one the case does not list, and, for the builtin engine, a tree
with uncommitted engine changes unless ``--allow-dirty`` (then named in the provenance).
Writes ``golden/<platform>/<case>.json`` with ``_provenance`` and prints what changed against
the old golden (tokens, max |Δ logprob|).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from logitsmatch.harness.cases import (
    DEFAULT_CASES_DIR,
    Case,
    CaseError,
    CaseTarget,
    Expected,
    find_case,
)
from logitsmatch.harness.cases.platforms import SCRATCH
from logitsmatch.harness.goldens.audit import audit_output, repeat_disagreement
from logitsmatch.harness.goldens.io import GoldenError, GoldenRefused, load_output, write_golden
from logitsmatch.harness.goldens.provenance import collect_provenance, dirty_engine_files
from logitsmatch.harness.goldens.schema import first_nonfinite
from logitsmatch.harness.run import (
    EngineSession,
    Machine,
    add_deadline_flag,
    detect_machine,
    skip_reason,
)
from logitsmatch.harness.run.command import EngineRun
from logitsmatch.harness.run.folders import DEFAULT_RUNS_ROOT, target_parent
from logitsmatch.harness.run.machine import resolve_platform
from logitsmatch.record import OutputJSON


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
    p.add_argument(
        "--allow-dirty",
        action="store_true",
        help="record although engine files have uncommitted changes (the provenance says so)",
    )
    return p


def record_main(argv: list[str], machine: Machine | None = None) -> int:
    """Run the command; 0 when the golden was written, 1 when refused, 2 for bad input."""
    args = parser().parse_args(argv)
    try:
        case = find_case(args.case, args.cases_dir).with_deadline(args.deadline_s)
    except CaseError as exc:
        return _fail(str(exc), 2)
    try:
        platform, machine = resolve_platform(args.platform, machine or detect_machine())
    except ValueError as exc:
        return _fail(str(exc), 2)
    case = case.with_platform(SCRATCH) if platform == SCRATCH else case
    dirty = dirty_engine_files() if case.engine == "builtin" else []
    why = _cannot_record(case, platform, machine, dirty, args.allow_dirty)
    if why is not None:
        return _fail(why, 2)
    target = CaseTarget(case, platform)
    try:
        session = EngineSession.start(target, target_parent(target.id, runs_root=args.runs_root))
        runs = [session.run_case(f"record-{i + 1}") for i in range(case.n_repeat)]
    except CaseError as exc:
        return _fail(str(exc), 2)
    try:
        output = _trusted_output(target, session.prompts, runs)
        provenance = collect_provenance(
            platform,
            _portable(runs[0].argv),
            device_name=machine.device_name,
            engine=case.engine,
        )
        provenance["case_sha256"] = hashlib.sha256(case.source.read_bytes()).hexdigest()
        if case.engine == "builtin":
            # why: check compares a golden only with runs of the same model (or stand-in).
            provenance["model"] = case.binding.run_model
        if dirty:
            provenance["uncommitted_engine_files"] = dirty
        diff = write_golden(target.golden_path, output, provenance)
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


def _cannot_record(
    case: Case, platform: str, machine: Machine, dirty: list[str], allow_dirty: bool
) -> str | None:
    """Why ``case`` must not be recorded for ``platform`` here, before anything runs."""
    if platform not in case.platforms:
        return (
            f"{case.source}: PLATFORMS does not list {platform!r} (it lists "
            f"{', '.join(case.platforms)}); add it before recording"
        )
    target = CaseTarget(case, platform)
    why = skip_reason(target, machine)
    if why is not None:
        return f"cannot record {target.id} here: {why}"
    # why not on the scratch platform: exploring uncommitted changes is what it is for
    if dirty and not allow_dirty and platform != SCRATCH:
        return (
            f"the engine's source has uncommitted changes ({', '.join(dirty[:6])}"
            f"{' ...' if len(dirty) > 6 else ''}): a golden must name the code it came from; "
            "commit them, or pass --allow-dirty (the provenance then lists them)"
        )
    return None


def _trusted_output(
    target: CaseTarget, prompts: Sequence[str], runs: Sequence[EngineRun]
) -> OutputJSON:
    """The first run's output, once every run succeeded with finite values, the first passes
    the audit and every repeat agrees with it as check requires; else GoldenRefused."""
    refusing = f"refusing to write {target.golden_path}"
    outputs: list[OutputJSON] = []
    for i, run in enumerate(runs):
        which = f"repeat {i + 1} of {len(runs)}: " if len(runs) > 1 else ""
        if run.error is not None:
            raise GoldenRefused(f"{refusing}: {which}the run failed: {run.error}")
        outputs.append(load_output(run.output_path, golden=False))
        bad = first_nonfinite(outputs[-1])
        if bad:
            raise GoldenRefused(f"{refusing}: {which}{bad} is NaN/inf")
    problem = audit_output(target.case, prompts, outputs[0])
    if problem:
        raise GoldenRefused(f"{refusing}: {problem}")
    for i, other in enumerate(outputs[1:], start=2):
        disagreement = repeat_disagreement(target.case, outputs[0], other)
        if disagreement:
            raise GoldenRefused(
                f"{refusing}: repeat {i} of {len(outputs)} differs from repeat 1 ({disagreement})"
            )
    return outputs[0]


def _portable(argv: Sequence[str]) -> list[str]:
    """The command without this checkout's absolute paths and interpreter location."""
    here = os.getcwd() + os.sep
    return ["python" if w == sys.executable else w.replace(here, "") for w in argv]


def _fail(message: str, code: int) -> int:
    print(f"logitsmatch record: error: {message}", file=sys.stderr)
    return code
