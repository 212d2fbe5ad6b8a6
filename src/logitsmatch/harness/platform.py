"""Platforms (hardware + backend + dtype) and detecting which one this machine is.

``PLATFORMS`` is the hardware table: what the engine runs on for each platform a case may list.
Where CI runs each platform's jobs lives in ``ci_platforms`` (a test keeps both tables on the same
names). Detection: ``cpu`` without CUDA; otherwise the table row whose device name matches and
whose device count fits, e.g. 8× "NVIDIA H100 80GB HBM3" -> ``dgx_h100``. A smaller machine of a
known kind (1× H100) is still ``dgx_h100``, so that its cases that need more GPUs are skipped with
a reason; an unknown GPU gets a name of its own (``nvidia_a100_sxm4_80gb_x8``) that no case lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from logitsmatch.harness.provenance import cpu_model

BACKENDS = ("gloo", "nccl")
DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Platform:
    """One row of the hardware table.

    ``devices``: accelerators a full machine of this kind has (one rank per device); 0 on
    ``cpu``, where ranks are processes and any count runs. ``device_match``: a substring of
    ``torch.cuda.get_device_name()`` (case-insensitive) that identifies the accelerator.
    """

    name: str
    backend: str
    dtype: str
    device: str
    devices: int
    device_match: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", self.name):
            raise ValueError(f"Platform.name: {self.name!r} must be lowercase letters, digits, _")
        for field, value, allowed in (
            ("backend", self.backend, BACKENDS),
            ("dtype", self.dtype, DTYPES),
            ("device", self.device, DEVICES),
        ):
            if value not in allowed:
                raise ValueError(f"Platform.{field}: {value!r} is not one of {allowed}")
        if self.device == "cuda" and (self.devices < 1 or not self.device_match):
            raise ValueError(
                f"Platform {self.name!r}: a cuda platform needs devices >= 1 and a "
                f"device_match, got {self.devices} and {self.device_match!r}"
            )


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform("cpu", backend="gloo", dtype="float32", device="cpu", devices=0),
        Platform(
            "dgx_h100",
            backend="nccl",
            dtype="bfloat16",
            device="cuda",
            devices=8,
            device_match="H100",
        ),
    )
}


@dataclass(frozen=True)
class Machine:
    """What this machine is: its platform name, accelerator name and count (0 on cpu)."""

    platform: str
    device_name: str
    device_count: int

    def describe(self) -> str:
        if self.device_count == 0:
            return f"{self.platform} ({self.device_name})"
        return f"{self.platform} ({self.device_count}× {self.device_name})"


def platform_for(device_name: str | None, device_count: int) -> str:
    """The platform name of a machine with ``device_count`` CUDA devices called ``device_name``.

    Among the table's rows whose ``device_match`` is in the name: the largest that the count
    fills, else the smallest (a partial machine of a known kind). No match: a name of its own.
    """
    if not device_name or device_count < 1:
        return "cpu"
    rows = [
        p
        for p in PLATFORMS.values()
        if p.device == "cuda" and p.device_match.lower() in device_name.lower()
    ]
    fitting = [p for p in rows if p.devices <= device_count]
    if fitting:
        return max(fitting, key=lambda p: p.devices).name
    if rows:
        return min(rows, key=lambda p: p.devices).name
    slug = re.sub(r"[^a-z0-9]+", "_", device_name.lower()).strip("_") or "cuda"
    return f"{slug}_x{device_count}"


def detect_machine() -> Machine:
    """Ask torch what this machine has (torch is imported here only, lazily)."""
    try:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        name = torch.cuda.get_device_name(0) if count else None
    except (ImportError, RuntimeError):
        count, name = 0, None
    if not count:
        return Machine("cpu", cpu_model(), 0)
    return Machine(platform_for(name, count), name or "cuda", count)


def platform_info(name: str) -> Platform | None:
    """The table row of ``name``, or None for a platform the table does not know."""
    return PLATFORMS.get(name)
