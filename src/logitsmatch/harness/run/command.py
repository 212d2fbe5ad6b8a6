"""Run one engine command with a deadline, keep its log, and say why it failed.

The command writes the output JSON (README.md, "The engine": Output JSON; checked by
``logitsmatch.harness.goldens.schema``); its stdout and stderr go to ``engine.log`` in its
folder. It runs in a session of its own, so that at the deadline its whole process group (the
launcher; its ranks take the parent-death signal from it) is killed and nothing outlives the run.
When the builtin engine's launcher reports which rank failed first, that rank, its exit status and
its log are named.
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from logitsmatch.process_group import die_with_parent, kill_group

_FAILED_RANK = re.compile(r"(rank \d+ \(tp=\d+ pp=\d+ dp=\d+\)) failed first \(([^)]*)\)")
_RANK_LOG = re.compile(r"--- last lines of (.+?) ---")
_TAIL_LINES = 8


@dataclass(frozen=True)
class EngineRun:
    """One finished (or killed) engine command. ``error`` is None when it exited 0 and wrote
    its output; otherwise one line saying what went wrong, then the log's last lines."""

    argv: tuple[str, ...]
    output_path: Path
    log_path: Path
    returncode: int | None
    duration_s: float
    error: str | None

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


def run_engine(
    argv: Sequence[str],
    *,
    output_path: Path,
    log_path: Path,
    env: Mapping[str, str],
    deadline_s: float,
    grace_s: float = 0.0,
) -> EngineRun:
    """Run ``argv``; kill its whole process group ``deadline_s + grace_s`` seconds after start.

    ``grace_s``: time for an engine that enforces ``deadline_s`` itself to report first.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(argv)}\n")
        log.flush()
        try:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        except OSError as exc:
            return EngineRun(
                tuple(argv), output_path, log_path, None, 0.0, f"cannot start the engine: {exc}"
            )
        try:
            code: int | None = proc.wait(timeout=deadline_s + grace_s)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            kill_group(proc)
    duration = time.monotonic() - start
    text = log_path.read_text(encoding="utf-8", errors="replace")
    error = describe_failure(code, text, log_path, deadline_s, duration)
    if error is None and not output_path.is_file():
        error = f"the engine exited 0 but wrote no output at {output_path}; log: {log_path}"
    return EngineRun(tuple(argv), output_path, log_path, code, duration, error)


def describe_failure(
    returncode: int | None,
    log_text: str,
    log_path: Path,
    deadline_s: float,
    duration_s: float | None = None,
) -> str | None:
    """None for exit 0; else what failed (the first failing rank when the launcher named one),
    where its log is, and the last lines of the engine's output. ``duration_s``: how long it
    ran, which tells a SIGKILL at the deadline from one by someone else."""
    if returncode == 0:
        return None
    early = duration_s is not None and duration_s < deadline_s
    if returncode == -signal.SIGKILL and early:
        head = (
            f"the engine was killed by SIGKILL after {duration_s:.1f} s, before the case's "
            f"{deadline_s:.0f} s deadline (by another process, or the kernel out of memory)"
        )
    elif returncode is None or returncode in (124, -signal.SIGKILL):
        head = f"the engine passed the case's {deadline_s:.0f} s deadline and was killed"
    elif returncode < 0:
        head = f"the engine was killed by {signal.Signals(-returncode).name}"
    else:
        head = f"the engine exited {returncode}"
    rank = _FAILED_RANK.search(log_text)
    if rank:
        head = f"the engine crashed: {rank.group(1)} failed first ({rank.group(2)})"
    rank_log = _RANK_LOG.search(log_text)
    where = f"rank log: {rank_log.group(1)}; " if rank_log else ""
    tail = [line for line in log_text.splitlines() if line.strip()][-_TAIL_LINES:]
    return f"{head}; {where}engine log: {log_path}\n" + "\n".join(tail)
