"""Platform table and detection: cpu without CUDA, else from the device name and count."""

import pytest

from logitsmatch.harness.ci_platforms import PLATFORMS as CI_PLATFORMS
from logitsmatch.harness.platform import (
    PLATFORMS,
    Machine,
    Platform,
    detect_machine,
    platform_for,
)


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


def test_the_hardware_table_and_the_ci_table_name_the_same_platforms():
    assert sorted(PLATFORMS) == sorted(CI_PLATFORMS)
    assert (PLATFORMS["cpu"].backend, PLATFORMS["cpu"].dtype, PLATFORMS["cpu"].devices) == (
        "gloo",
        "float32",
        0,
    )
    h100 = PLATFORMS["dgx_h100"]
    assert (h100.backend, h100.dtype, h100.device, h100.devices) == ("nccl", "bfloat16", "cuda", 8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name"}, "Platform.name"),
        ({"backend": "mpi"}, "Platform.backend: 'mpi'"),
        ({"dtype": "int8"}, "Platform.dtype: 'int8'"),
        ({"device_match": ""}, "needs devices >= 1 and a device_match"),
    ],
)
def test_bad_rows_are_rejected_by_field(kwargs, message):
    row = {
        "name": "x",
        "backend": "nccl",
        "dtype": "bfloat16",
        "device": "cuda",
        "devices": 8,
        "device_match": "H100",
    }
    with pytest.raises(ValueError, match=message):
        Platform(**{**row, **kwargs})


def test_this_machine_is_detected_from_torch():
    import torch

    machine = detect_machine()
    if torch.cuda.is_available():
        assert machine.device_count == torch.cuda.device_count()
    else:
        assert machine == Machine("cpu", machine.device_name, 0)
        assert machine.device_name and machine.describe().startswith("cpu (")
