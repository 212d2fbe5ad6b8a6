"""logitsmatch: a regression tripwire for distributed LLM inference."""

import os
import time

from logitsmatch.process_group import die_with_parent

# Process start as seen by the package (before torch is imported): startup timings count from here.
STARTED = time.perf_counter()

if "TORCHELASTIC_RUN_ID" in os.environ:
    # why here, first: a rank started by torchrun must die with its agent however the job
    # ends (SIGKILL of whatever launched it included), also while it still imports torch,
    # which takes seconds; a rank orphaned before this line has PID 1 as parent and leaves.
    die_with_parent()
    if os.getppid() == 1:
        os._exit(1)
