"""Ranks meet without the host's name.

torchrun's ``--standalone`` published the host's name as the rendezvous address, so inside a
container whose hostname does not resolve the ranks waited until the case's deadline (c10d:
"gai error"; the dp8 case hung so). Real gloo ranks from our launcher, in a UTS namespace
with a name of its own: a 2-rank run, and a whole 8-rank ZMQ case against its golden.
"""

from __future__ import annotations

import json
import os
import shlex
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


def _unshare() -> str:
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-u", "true"], check=False).returncode:
        pytest.skip("needs unshare -u (root) to give the run a hostname of its own")
    return unshare


def _without_hostname(argv: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    script = f"hostname logitsmatch-unresolvable-host && exec {shlex.join(argv)}"
    return subprocess.run(
        [_unshare(), "-u", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kw,
    )


def test_a_two_rank_run_needs_no_resolvable_hostname(tmp_path):
    _unshare()
    start = time.monotonic()
    proc = _without_hostname(_generate(tmp_path, 3), timeout=150)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert time.monotonic() - start < 60  # it used to wait out the whole deadline
    assert len(json.loads((tmp_path / "out.json").read_text())["0"]["generated_tokens"]) == 3


def test_an_eight_rank_zmq_case_passes_without_a_resolvable_hostname(tmp_path):
    _unshare()
    root = Path(__file__).resolve().parents[3]
    case = "gpt_dynamic_inference_tp2_pp2_dp2_tiny_logitsmatch_zmq"
    argv = [sys.executable, "-m", "logitsmatch.cli", "check", case, "--platform", "cpu"]
    start = time.monotonic()
    proc = _without_hostname(
        argv, timeout=300, cwd=root, env={**os.environ, "LOGITSMATCH_RUN_DIR": str(tmp_path)}
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"{case}@cpu: PASSED" in proc.stderr
    assert time.monotonic() - start < 120
