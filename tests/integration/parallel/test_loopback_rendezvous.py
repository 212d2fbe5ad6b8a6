"""Ranks meet on loopback, never by hostname.

torchrun's ``--standalone`` published the host's name as the rendezvous address, so inside a
container whose hostname does not resolve the ranks waited until the case's deadline (c10d:
"gai error"). Real gloo ranks from our launcher, in a UTS namespace with a name of its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

GENERATE = [sys.executable, "-m", "logitsmatch.cli", "generate", "--model", "tiny"]
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def _generate(tmp_path: Path, tokens: int) -> list[str]:
    return [
        *GENERATE,
        "--tensor-model-parallel-size",
        "2",
        "--prompts",
        "hello there",
        "--num-tokens-to-generate",
        str(tokens),
        "--output-path",
        str(tmp_path / "out.json"),
        "--run-dir",
        str(tmp_path / "run"),
        "--deadline-s",
        "100",
    ]


def test_a_two_rank_run_needs_no_resolvable_hostname(tmp_path):
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-u", "true"], check=False).returncode:
        pytest.skip("needs unshare -u (root) to give the run a hostname of its own")
    script = f"hostname logitsmatch-unresolvable-host && exec {' '.join(_generate(tmp_path, 3))}"
    start = time.monotonic()
    proc = subprocess.run(
        [unshare, "-u", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert time.monotonic() - start < 60  # it used to wait out the whole deadline
    assert len(json.loads((tmp_path / "out.json").read_text())["0"]["generated_tokens"]) == 3
