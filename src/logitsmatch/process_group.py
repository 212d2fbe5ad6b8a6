"""Children in a session of their own, and the one way to end such a session: TERM, then KILL,
then reap. Used by every layer that starts processes (engine ranks, services, engine runs).

Plain stdlib; nothing above it is imported here, so engine, serving and harness can all use it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int | None = None) -> None:
    """``preexec_fn`` for a child in a session of its own: on Linux the kernel SIGKILLs it when
    the process that started it dies, however that dies (SIGKILL included), so that no engine
    outlives the harness that ran it. A no-op elsewhere.

    ``parent``: the starting process's pid. A child whose parent is already another process
    died with it before the signal was armed (the race between fork and prctl) and exits."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if parent is not None and os.getppid() != parent:
            os._exit(1)


def kill_group(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM ``proc``'s whole process group, SIGKILL what is left after ``grace_s``, reap
    ``proc``. ``proc`` must have been started with ``start_new_session=True``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        if _group_gone(proc, grace_s):
            break
    # why: a process stuck in uninterruptible sleep survives SIGKILL; do not hang on it.
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)


def _group_gone(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        proc.poll()  # why: a zombie leader keeps its group alive until it is reaped
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False
