"""``logitsmatch check --dry-run``: load and validate cases, say what each target would do, and
start no engine.

For every target: its golden is read and validated (when it exists), its ``${VAR}``s, ENV_VARS
and prompts are resolved as a run would resolve them, and then it is one of: ``run`` (with the
layout, driver and model), ``skip`` (and why), ``not recorded`` (no golden yet),
``not comparable`` (the golden is another model's) or ``invalid`` (what is wrong, naming the
file, the field and the value).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from logitsmatch.harness.cases import CaseError, CaseTarget, Expected
from logitsmatch.harness.goldens import GoldenError, load_output
from logitsmatch.harness.reports.text import counted
from logitsmatch.harness.run.machine import Machine
from logitsmatch.harness.run.session import resolve_run
from logitsmatch.harness.run.skips import skip_reason
from logitsmatch.harness.run.target import model_mismatch
from logitsmatch.harness.text_enum import TextEnum


class Plan(TextEnum):
    """What a target would do in a real ``check``."""

    RUN = "run"
    SKIP = "skip"
    NOT_RECORDED = "not recorded"
    NOT_COMPARABLE = "not comparable"
    INVALID = "invalid"


@dataclass(frozen=True)
class TargetPlan:
    """One target's plan and its detail (the reason, or what would run)."""

    target_id: str
    plan: Plan
    detail: str

    def line(self) -> str:
        return f"{self.target_id}: {self.plan}: {self.detail}"


def plan_target(
    target: CaseTarget, machine: Machine, environ: Mapping[str, str] | None = None
) -> TargetPlan:
    """Validate ``target`` as a run would, without running it, and say what it would do."""
    case = target.case

    def plan(kind: Plan, detail: str) -> TargetPlan:
        return TargetPlan(target.id, kind, detail)

    golden = None
    if target.golden_path.exists():
        try:
            golden = load_output(target.golden_path, golden=True)
        except GoldenError as exc:
            return plan(Plan.INVALID, str(exc))
    why = skip_reason(target, machine)
    if target.expected == Expected.SKIP and why is not None:
        return plan(Plan.SKIP, why)
    try:
        prompts = _resolve(target, environ)
    except CaseError as exc:
        return plan(Plan.INVALID, str(exc))
    if why is not None:
        return plan(Plan.SKIP, why)
    if golden is None:
        if target.expected == Expected.NOT_RECORDED:
            return plan(Plan.NOT_RECORDED, target.reason)
        return plan(Plan.INVALID, f"no golden: {target.golden_path} does not exist")
    mismatch = model_mismatch(target, golden)
    if mismatch is not None:
        return plan(Plan.NOT_COMPARABLE, mismatch)
    layout = f"tp{case.tensor_parallel} pp{case.pipeline_parallel} dp{case.data_parallel}"
    engine = f"model {case.binding.run_model}" if case.engine == "builtin" else case.engine
    detail = f"{counted(prompts, 'request')}, {layout}, driver {case.driver}, {engine}"
    return plan(Plan.RUN, f"{detail}; compare with {target.golden_path}")


def _resolve(target: CaseTarget, environ: Mapping[str, str] | None) -> int:
    """Resolve what the run would (CaseError when it cannot); the number of prompts."""
    case = target.case
    _, _, prompts = resolve_run(case, environ)
    if case.engine != "builtin":
        case.engine_argv(output_path="OUT", run_dir="RUN", platform=target.platform)
    return len(prompts)
