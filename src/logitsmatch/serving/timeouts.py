"""The service's timing defaults, one definition each; every flag and config takes its own
default from here.

``PEER_TIMEOUT_S``: how long an engine and the coordinator trust each other's silence. A step
blocks the worker loop, so it must exceed the longest engine step (a 583m stand-in step in
batch-invariant mode takes seconds on a small CPU). ``CLIENT_TIMEOUT_S``: how long a client
trusts a silent coordinator, and waits for each control round trip; the coordinator never
blocks, so this can be short.
"""

from __future__ import annotations

HEARTBEAT_S = 0.5
PEER_TIMEOUT_S = 60.0
CLIENT_TIMEOUT_S = 10.0
