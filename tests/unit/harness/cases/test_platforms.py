"""The one platform table: hardware and CI columns in each row, rows validated by field."""

import pytest

from logitsmatch.harness.cases.platforms import CPU_DOCKER_ARGS, PLATFORMS, Platform


def test_the_table_has_the_hardware_and_the_ci_columns_of_each_platform():
    assert sorted(PLATFORMS) == ["cpu", "dgx_h100"]
    assert (PLATFORMS["cpu"].backend, PLATFORMS["cpu"].dtype, PLATFORMS["cpu"].devices) == (
        "gloo",
        "float32",
        0,
    )
    h100 = PLATFORMS["dgx_h100"]
    assert (h100.backend, h100.dtype, h100.device, h100.devices) == ("nccl", "bfloat16", "cuda", 8)
    assert (PLATFORMS["cpu"].image_variant, h100.image_variant) == ("cpu", "gpu")
    assert h100.uses_gpus and not PLATFORMS["cpu"].uses_gpus


ROW = {
    "name": "x",
    "backend": "nccl",
    "dtype": "bfloat16",
    "device": "cuda",
    "devices": 8,
    "device_match": "H100",
    "image_variant": "gpu",
    "github_runs_on": ("self-hosted",),
    "gitlab_tags": ("x",),
    "gitlab_dind": False,
    "docker_args": CPU_DOCKER_ARGS,
    "timeout_minutes": 60,
}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name"}, "Platform.name"),
        ({"backend": "mpi"}, "Platform.backend: 'mpi'"),
        ({"dtype": "int8"}, "Platform.dtype: 'int8'"),
        ({"device_match": ""}, "needs devices >= 1 and a device_match"),
        ({"image_variant": "tpu"}, "Platform.image_variant: 'tpu'"),
        ({"github_runs_on": ()}, "Platform.github_runs_on: empty"),
        ({"gitlab_tags": ()}, "runs on a shell runner: name its tags"),
        ({"timeout_minutes": 0}, "Platform.timeout_minutes"),
    ],
)
def test_bad_rows_are_rejected_by_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Platform(**{**ROW, **kwargs})
