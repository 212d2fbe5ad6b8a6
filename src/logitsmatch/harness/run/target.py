"""Run one case target and judge it: the heart of ``logitsmatch check``.

``run_target``: skip with a reason when the target cannot run here; an error when its golden is
missing (unless not yet recorded) or unusable; else run the case N_REPEAT times in a fresh run
folder (each run must finish within the case's deadline), compare every run with the golden,
score the golden continuation by teacher forcing where tokens diverged, require bit-identical
repeats where the case is DETERMINISTIC, and write the target's reports into its run folder.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from logitsmatch.harness.cases import CaseError, CaseTarget
from logitsmatch.harness.goldens import (
    GoldenError,
    current_environment,
    diff_goldens,
    environment_changes,
    load_output,
)
from logitsmatch.harness.judge import Verdict, compare
from logitsmatch.harness.judge.divergence import with_token_text
from logitsmatch.harness.judge.teacher_forcing import (
    Codec,
    diverged_requests,
    engine_tokenizer,
    forced_logprobs,
    scoring_args,
    scoring_prompts,
)
from logitsmatch.harness.reports import (
    OutcomeStatus,
    TargetOutcome,
    outcome_from_verdict,
    outcome_without_golden,
    write_reports,
)
from logitsmatch.harness.run.folders import DEFAULT_RUNS_ROOT, target_parent
from logitsmatch.harness.run.machine import Machine
from logitsmatch.harness.run.session import EngineSession, case_notes, echo_stderr
from logitsmatch.harness.run.skips import skip_reason


@dataclass(frozen=True)
class TargetRun:
    """How a target ended, and where its run folder is (None when nothing ran)."""

    outcome: TargetOutcome
    run_dir: Path | None = None


def run_target(
    target: CaseTarget,
    machine: Machine,
    *,
    runs_root: Path = DEFAULT_RUNS_ROOT,
    echo: Callable[[str], None] = echo_stderr,
) -> TargetRun:
    """Run and compare ``target`` on this ``machine``; never raises for a case or engine fault."""
    run = _run_target(target, machine, runs_root, echo)
    return replace(run, outcome=replace(run.outcome, source=str(target.case.source)))


def _run_target(
    target: CaseTarget, machine: Machine, runs_root: Path, echo: Callable[[str], None]
) -> TargetRun:
    start = time.monotonic()
    case = target.case
    why = skip_reason(target, machine)
    if why is not None:
        return TargetRun(TargetOutcome(case.name, target.platform, OutcomeStatus.SKIPPED, why))
    if not target.golden_path.exists():
        return TargetRun(
            outcome_without_golden(
                case.name,
                target.platform,
                str(target.golden_path),
                expected=target.expected,
                reason=target.reason,
            )
        )
    notes = case_notes(case)
    try:
        golden = load_output(target.golden_path, golden=True)
    except GoldenError as exc:
        return TargetRun(TargetOutcome(case.name, target.platform, OutcomeStatus.ERROR, str(exc)))
    mismatch = model_mismatch(target, golden)
    if mismatch is not None:
        status = OutcomeStatus.NOT_COMPARABLE
        return TargetRun(TargetOutcome(case.name, target.platform, status, mismatch, notes=notes))
    try:
        session = EngineSession.start(target, target_parent(target.id, runs_root=runs_root), echo)
    except CaseError as exc:
        return TargetRun(TargetOutcome(case.name, target.platform, OutcomeStatus.ERROR, str(exc)))
    try:
        outcome = _run_and_judge(session, golden)
    except CaseError as exc:
        outcome = TargetOutcome(case.name, target.platform, OutcomeStatus.ERROR, str(exc))
    outcome = replace(outcome, notes=notes)
    if outcome.status == OutcomeStatus.FAILED:
        outcome = replace(outcome, environment=_environment_changes(session, golden, machine))
    outcome = replace(outcome, duration_s=time.monotonic() - start, source=str(case.source))
    session.log(f"{target.id}: {outcome.status} in {outcome.duration_s:.1f} s", echo=False)
    quiet = Console(file=io.StringIO(), width=120)
    write_reports([outcome], session.run_dir, console=quiet, environ={})
    return TargetRun(outcome, session.run_dir)


def recorded_model(target: CaseTarget, golden: Mapping[str, Any]) -> str | None:
    """The model a golden was recorded with: a Megatron folder's own golden, the folder's
    checkpoint; ours, its provenance's ``model`` (None when it does not say)."""
    if target.golden_path in target.case.megatron_goldens.values():
        return target.case.binding.golden_model
    model = (golden.get("_provenance") or {}).get("model")
    return model if isinstance(model, str) else None


def model_mismatch(target: CaseTarget, golden: Mapping[str, Any]) -> str | None:
    """None when ``golden`` was recorded with the model this run uses (or does not say);
    else the not-comparable reason."""
    case = target.case
    recorded = recorded_model(target, golden)
    if case.engine != "builtin" or case.binding.comparable_with(recorded):
        return None
    return (
        f"not comparable: golden from {recorded}, this run {case.binding.run_model} "
        f"({target.golden_path}); record a golden for this model: nox -s record -- "
        f"{case.name} --platform {target.platform}"
    )


def _run_and_judge(session: EngineSession, golden: Mapping[str, Any]) -> TargetOutcome:
    target, case = session.target, session.target.case
    outputs: list[dict[str, Any]] = []
    for i in range(case.n_repeat):
        run = session.run_case(f"repeat-{i + 1}")
        if run.error is not None:
            return _error(target, _which(i, case.n_repeat) + run.error)
        try:
            outputs.append(load_output(run.output_path, golden=False))
        except GoldenError as exc:
            return _error(target, f"{_which(i, case.n_repeat)}unusable output: {exc}")
    verdicts = [_compare(target, golden, out) for out in outputs]
    bad = next((i for i, v in enumerate(verdicts) if not v.passed), None)
    if bad is None:
        outcome = outcome_from_verdict(verdicts[0], expected=target.expected, reason=target.reason)
        return _check_repeats(outcome, outputs) if case.deterministic else outcome
    verdict = verdicts[bad]
    codec = (
        _tokenizer(session)
        if session.builtin and diverged_requests(verdict.requests, golden)
        else None
    )
    if codec is not None:
        forced = _teacher_force(session, golden, verdict, codec)
        if forced:
            verdict = _compare(target, golden, outputs[bad], forced)
        verdict = with_token_text(verdict, codec.decode)
    outcome = outcome_from_verdict(verdict, expected=target.expected, reason=target.reason)
    return replace(outcome, reason=_which(bad, case.n_repeat) + outcome.reason)


def _compare(
    target: CaseTarget,
    golden: Mapping[str, Any],
    output: Mapping[str, Any],
    forced: Mapping[str, list[float]] | None = None,
) -> Verdict:
    case = target.case
    return compare(
        golden,
        output,
        case.tolerances,
        metrics=case.metrics,
        case=case.name,
        platform=target.platform,
        teacher_forced=forced,
    )


def _check_repeats(outcome: TargetOutcome, outputs: list[dict[str, Any]]) -> TargetOutcome:
    """DETERMINISTIC: every repeat bit-identical to the first (tokens, logprobs, text)."""
    if outcome.status != OutcomeStatus.PASSED:
        return outcome
    for i, other in enumerate(outputs[1:], start=2):
        diff = diff_goldens(outputs[0], other, path=f"repeat {i} vs repeat 1")
        if not diff.empty:
            return replace(
                outcome,
                status=OutcomeStatus.FAILED,
                reason="repeats are not bit-identical (the case is DETERMINISTIC): "
                + diff.format(),
            )
    return outcome


def _tokenizer(session: EngineSession) -> Codec | None:
    """The run's tokenizer, or None (and a log line) when it cannot be loaded."""
    try:
        return engine_tokenizer(session.model_args)
    except (ValueError, OSError, RuntimeError) as exc:
        session.log(f"{session.target.id}: no teacher forcing: no tokenizer: {exc}")
        return None


def _teacher_force(
    session: EngineSession, golden: Mapping[str, Any], verdict: Verdict, codec: Codec
) -> dict[str, list[float]]:
    """Teacher-forced logprobs of the diverged requests; {} (and a log line) when not possible."""
    rids = diverged_requests(verdict.requests, golden)
    try:
        prompts = scoring_prompts(golden, rids, codec.encode)
    except (ValueError, OSError, RuntimeError) as exc:
        session.log(f"{session.target.id}: no teacher forcing: cannot tokenize: {exc}")
        return {}
    run = session.run_scoring("scoring", prompts, scoring_args(session.model_args))
    if run.error is not None:
        session.log(f"{session.target.id}: no teacher forcing: {run.error.splitlines()[0]}")
        return {}
    try:
        scored = load_output(run.output_path, golden=False)
        return {rid: forced_logprobs(golden[rid], scored[str(i)]) for i, rid in enumerate(rids)}
    except (GoldenError, KeyError, ValueError) as exc:
        session.log(f"{session.target.id}: no teacher forcing: {exc}")
        return {}


def _environment_changes(
    session: EngineSession, golden: Mapping[str, Any], machine: Machine
) -> tuple[str, ...]:
    # The target runs here only on this machine's own platform (skip_reason), as in record.
    current = current_environment(session.target.platform, device_name=machine.device_name)
    recorded = golden.get("_provenance") or {}
    return tuple(environment_changes(recorded, current, software=session.builtin))


def _which(index: int, n: int) -> str:
    return f"repeat {index + 1} of {n}: " if n > 1 else ""


def _error(target: CaseTarget, reason: str) -> TargetOutcome:
    return TargetOutcome(target.case.name, target.platform, OutcomeStatus.ERROR, reason)
