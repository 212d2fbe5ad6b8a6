"""Why a case target is not run on this machine: always a reason, never a silent pass."""

from __future__ import annotations

from logitsmatch.harness.cases import Case, CaseTarget, Expected
from logitsmatch.harness.cases.platforms import platform_info
from logitsmatch.harness.reports import OutcomeStatus, TargetOutcome
from logitsmatch.harness.run.machine import Machine


def skip_reason(target: CaseTarget, machine: Machine) -> str | None:
    """None when ``target`` can run here; else why not (marked skip, another platform, too
    few devices)."""
    case = target.case
    if target.expected == Expected.SKIP:
        return f"marked skip for {target.platform}: {target.reason}"
    if target.platform != machine.platform:
        return f"this machine is {machine.describe()}, not {target.platform}"
    row = platform_info(target.platform)
    if row is not None and row.device == "cuda" and case.nproc > machine.device_count:
        return (
            f"needs {case.nproc} GPUs (tp {case.tensor_parallel} × pp "
            f"{case.pipeline_parallel} × dp {case.data_parallel}), this machine has "
            f"{machine.device_count}"
        )
    return None


def unlisted_outcome(case: Case, platform: str) -> TargetOutcome:
    """A case asked for on a platform its PLATFORMS does not list."""
    return TargetOutcome(
        case.name,
        platform,
        OutcomeStatus.SKIPPED,
        f"the case does not run on {platform} (its PLATFORMS: {', '.join(case.platforms)})",
    )
