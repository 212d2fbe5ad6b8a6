"""logitsmatch: a regression tripwire for distributed LLM inference."""

import os
import time

from logitsmatch.process_group import die_with_parent

# Process start as seen by the package (before torch is imported): startup timings count from here.
STARTED = time.perf_counter()

if "TORCHELASTIC_RUN_ID" in os.environ:
    # why here, first: a rank started by torchrun must die with its agent however the job
    # ends (SIGKILL of whatever launched it included), also while it still imports torch,
    # which takes seconds. A rank whose agent died before this line has been re-parented
    # (to PID 1 or a subreaper, which is not torchrun) and leaves at once.
    die_with_parent()
    try:
        # engine/launch.py always starts `python -m torch.distributed.run`; other launchers
        # (a user's torchrun) get the death signal alone
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as _parent:
            _orphaned = (
                os.environ.get("LOGITSMATCH_RANK_JOB") == "1"
                and b"torch.distributed.run" not in _parent.read()
            )
    except OSError:
        _orphaned = False  # no /proc (not Linux): the death signal is all there is
    if _orphaned:
        os._exit(1)
