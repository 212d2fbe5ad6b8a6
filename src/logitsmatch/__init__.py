"""logitsmatch: a regression tripwire for distributed LLM inference."""

import time

# Process start as seen by the package (before torch is imported): startup timings count from here.
STARTED = time.perf_counter()
