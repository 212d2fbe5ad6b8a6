"""Why a target does not run here: a reason every time, never a silent pass."""

from logitsmatch.harness.cases import load_case
from logitsmatch.harness.reports import OutcomeStatus
from logitsmatch.harness.run import Machine
from logitsmatch.harness.run.skips import skip_reason, unlisted_outcome

SKIPPED = OutcomeStatus.SKIPPED

CPU = Machine("cpu", "Some CPU", 0)
ONE_H100 = Machine("dgx_h100", "NVIDIA H100 80GB HBM3", 1)


def _case(
    tmp_path, tp=1, pp=8, platforms="  cpu: {expected: pass}\n  dgx_h100: {expected: pass}\n"
):
    path = tmp_path / "cases" / "c.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        f"MODEL_ARGS:\n  --tensor-model-parallel-size: {tp}\n"
        f"  --pipeline-model-parallel-size: {pp}\n"
        f'DRIVER: in-process\nPROMPTS: ["hello"]\nPLATFORMS:\n{platforms}'
    )
    return load_case(path)


def test_a_runnable_target_has_no_reason(tmp_path):
    targets = {t.platform: t for t in _case(tmp_path).targets()}
    # 8 ranks on a CPU machine are 8 processes: no device limit.
    assert skip_reason(targets["cpu"], CPU) is None
    assert skip_reason(targets["dgx_h100"], Machine("dgx_h100", "H100", 8)) is None


def test_too_few_gpus(tmp_path):
    target = {t.platform: t for t in _case(tmp_path).targets()}["dgx_h100"]
    assert skip_reason(target, ONE_H100) == (
        "needs 8 GPUs (tp 1 × pp 8 × dp 1), this machine has 1"
    )


def test_another_platform(tmp_path):
    target = {t.platform: t for t in _case(tmp_path).targets()}["dgx_h100"]
    assert skip_reason(target, CPU) == "this machine is cpu (Some CPU), not dgx_h100"


def test_marked_skip(tmp_path):
    case = _case(tmp_path, platforms="  cpu: {expected: skip, reason: too slow here}\n")
    assert skip_reason(case.targets()[0], CPU) == "marked skip for cpu: too slow here"


def test_an_unlisted_platform_is_a_skip_with_the_listed_ones(tmp_path):
    outcome = unlisted_outcome(_case(tmp_path), "gb200")
    assert outcome.status == SKIPPED and outcome.id == "c@gb200"
    assert outcome.reason == "the case does not run on gb200 (its PLATFORMS: cpu, dgx_h100)"
