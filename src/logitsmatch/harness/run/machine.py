"""Which platform this machine is: ``cpu`` without CUDA; otherwise from the platform table.

Detection: the table row whose device name matches and whose device count fits, e.g. 8×
"NVIDIA H100 80GB HBM3" -> ``dgx_h100``. A smaller machine of a known kind (1× H100) is still
``dgx_h100``, so that its cases that need more GPUs are skipped with a reason; an unknown GPU
gets a name of its own (``nvidia_a100_sxm4_80gb_x8``) that no case lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from logitsmatch.harness.cases.platforms import PLATFORMS, SCRATCH, check_platform, use_scratch
from logitsmatch.harness.goldens.provenance import cpu_model


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
        if p.device == "cuda"
        and p.name != SCRATCH
        and p.device_match.lower() in device_name.lower()
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


def resolve_platform(name: str, machine: Machine) -> tuple[str, Machine]:
    """The platform a command works on (``auto``: this machine's; ``local``: this machine as
    the scratch platform, whose goldens are golden/local/) and the machine as it then reads;
    ValueError for a name the table does not know."""
    name = machine.platform if name == "auto" else name
    check_platform(name)
    if name != SCRATCH:
        return name, machine
    if machine.platform not in PLATFORMS:
        raise ValueError(
            f"--platform {SCRATCH}: this machine ({machine.describe()}) is no row of the "
            "platform table, so its device and dtype are unknown"
        )
    use_scratch(machine.platform)
    return SCRATCH, replace(machine, platform=SCRATCH)
