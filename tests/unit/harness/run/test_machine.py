"""Detection: cpu without CUDA, else the platform table's row from the device name and count."""

import pytest

from logitsmatch.harness.run.machine import Machine, detect_machine, platform_for


@pytest.mark.parametrize(
    ("name", "count", "expected"),
    [
        (None, 0, "cpu"),
        ("NVIDIA H100 80GB HBM3", 0, "cpu"),
        ("NVIDIA H100 80GB HBM3", 8, "dgx_h100"),
        # A partial machine of a known kind: its cases needing 8 GPUs are skipped, not renamed.
        ("NVIDIA H100 80GB HBM3", 1, "dgx_h100"),
        ("NVIDIA A100-SXM4-80GB", 8, "nvidia_a100_sxm4_80gb_x8"),
    ],
)
def test_platform_for(name, count, expected):
    assert platform_for(name, count) == expected


def test_this_machine_is_detected_from_torch():
    import torch

    machine = detect_machine()
    if torch.cuda.is_available():
        assert machine.device_count == torch.cuda.device_count()
    else:
        assert machine == Machine("cpu", machine.device_name, 0)
        assert machine.device_name and machine.describe().startswith("cpu (")
