"""Runs: which platform this machine is, why a target is skipped here, the engine command of a
case in a run folder of its own within the case's deadline, and run + judge of one target
(``run_target``). The ``check`` command is ``run.check``."""

from logitsmatch.harness.run.machine import Machine, detect_machine
from logitsmatch.harness.run.session import EngineSession, add_deadline_flag
from logitsmatch.harness.run.skips import skip_reason
from logitsmatch.harness.run.target import run_target

__all__ = [
    "EngineSession",
    "Machine",
    "add_deadline_flag",
    "detect_machine",
    "run_target",
    "skip_reason",
]
