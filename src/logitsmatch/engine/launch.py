"""Start a multi-rank job on this host, and fail it fast and loudly.

This process is the launcher: it starts the ``world_size`` ranks itself (``python -m module``,
one process group, each with RANK / WORLD_SIZE / LOCAL_RANK and a rendezvous file), watches
them every 0.1 s from a thread of its own and, when one fails, kills the rest. On failure it
names the rank that died first (with its tp/pp/dp coordinates), its exit code or signal, and
the tail of its log.

why not torchrun: its agent's TCPStore listens on every interface (a loopback-only service
must not), its rendezvous resolves the host's name (inside a container without a network the
ranks waited out the case's deadline), and its agent is one more process to outlive a SIGKILL.
One host needs none of that: the ranks meet in a FileStore in the run folder
(``distributed.rendezvous``), gloo talks over loopback, and every rank gets the parent-death
signal from this process, which is the one that watches it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from logitsmatch.engine.layout import Layout
from logitsmatch.process_group import die_with_parent, kill_group

# The environment a rank reads (engine/distributed.py): the rendezvous file and its deadline.
RENDEZVOUS_ENV = "LOGITSMATCH_RENDEZVOUS"
RENDEZVOUS_TIMEOUT_ENV = "LOGITSMATCH_RENDEZVOUS_TIMEOUT_S"
# A rank that has not reached the rendezvous by then fails the job (issue: under 2 minutes).
RENDEZVOUS_TIMEOUT_S = 90.0
_POLL_S = 0.1


class RankJob:
    """A running job of ``layout.world_size`` ranks; ``wait`` reaps it and reports a failure,
    ``stop`` kills it. Rank ``r`` logs (stdout and stderr) to
    ``<run_dir>/rank-logs/rank<r>.log``."""

    def __init__(
        self,
        module: str,
        argv: list[str],
        layout: Layout,
        run_dir: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``env``: added to this process's environment for the ranks (e.g. a secret, which
        must not go on the command line)."""
        self.layout = layout
        self.folder = (
            Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="logitsmatch-run-"))
        )
        self.log_dir = self.folder / "rank-logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # why a fresh name: a FileStore left by an earlier run in the same folder would
        # hand this job its stale keys
        store = self.folder / f"rendezvous-{uuid.uuid4().hex[:12]}"
        base = dict(
            os.environ,
            **(env or {}),
            PYTHONUNBUFFERED="1",
            OMP_NUM_THREADS=str(_threads(layout)),
            WORLD_SIZE=str(layout.world_size),
            LOCAL_WORLD_SIZE=str(layout.world_size),
            **{RENDEZVOUS_ENV: str(store)},
        )
        base.setdefault(RENDEZVOUS_TIMEOUT_ENV, str(RENDEZVOUS_TIMEOUT_S))
        # why: gloo otherwise binds the address the host's name resolves to, if any
        base.setdefault("GLOO_SOCKET_IFNAME", "lo")
        self.procs: list[subprocess.Popen[bytes]] = []
        self._failure: tuple[int, int] | None = None  # (rank, exit code) of the first to fail
        self._lock = threading.Lock()
        launcher = os.getpid()
        for rank in range(layout.world_size):
            self.procs.append(self._spawn(module, argv, rank, base, launcher))
        self._watcher = threading.Thread(target=self._watch, name="rank-watcher", daemon=True)
        self._watcher.start()

    def _spawn(
        self, module: str, argv: list[str], rank: int, base: dict[str, str], launcher: int
    ) -> subprocess.Popen[bytes]:
        group = self.procs[0].pid if self.procs else 0

        def enter_group() -> None:
            # One process group for the whole job (rank 0 leads it), away from the caller's,
            # so that stop() ends every rank and nothing of the caller's. why not setsid: a
            # process can only join a group of its own session.
            os.setpgid(0, group)
            die_with_parent(launcher)

        env = dict(base, RANK=str(rank), LOCAL_RANK=str(rank))
        with open(self.log_dir / f"rank{rank}.log", "wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", module, *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=enter_group,
            )

    def _watch(self) -> None:
        while self._check() is None:
            time.sleep(_POLL_S)

    def _check(self) -> int | None:
        """The job's status: None while every rank runs, 0 when all exited 0, else the first
        failure's exit code (the rest are killed at once)."""
        with self._lock:
            if self._failure is not None:
                return self._failure[1]
            codes = [proc.poll() for proc in self.procs]
            failed = [(rank, code) for rank, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                # Of ranks seen dead in the same poll, one killed by a signal is the cause
                # more often than one that exited on a broken connection to it.
                self._failure = min(failed, key=lambda f: (f[1] >= 0, f[0]))
            elif all(code == 0 for code in codes):
                return 0
            else:
                return None
        self.stop()
        return self._failure[1]

    def poll(self) -> int | None:
        return self._check()

    def wait(self, deadline_s: float) -> int:
        """Exit code of the job (124 past the deadline); prints which rank failed, if one did."""
        end = time.monotonic() + deadline_s
        try:
            while (code := self._check()) is None:
                if time.monotonic() >= end:
                    print(
                        f"logitsmatch: {self.layout.world_size}-rank job passed its "
                        f"{deadline_s:.0f} s deadline and was killed; rank logs: {self.log_dir}",
                        file=sys.stderr,
                    )
                    return 124
                time.sleep(_POLL_S)
        finally:
            self.stop()
        if code != 0:
            print(self.failure_report(), file=sys.stderr)
        return code

    def stop(self) -> None:
        """TERM, then KILL, the whole job's process group; reap every rank."""
        kill_group(self.procs[0])
        for proc in self.procs[1:]:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()  # why: it left the group (it cannot, but never hang on it)

    def failure_report(self) -> str:
        """Name the rank that failed first, its exit code or signal, and its log tail."""
        if self._failure is None:
            return f"logitsmatch: the {self.layout.world_size}-rank job did not fail"
        rank, code = self._failure
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        log = self.log_dir / f"rank{rank}.log"
        lines = [f"logitsmatch: {self.layout.describe(rank)} failed first ({how})."]
        if log.exists():
            lines.append(f"--- last lines of {log} ---")
            lines.append(_tail(log.read_text(errors="replace"), 20))
        return "\n".join(lines)


def launch_ranks(
    module: str,
    argv: list[str],
    layout: Layout,
    deadline_s: float,
    run_dir: str | os.PathLike[str] | None = None,
) -> int:
    """Run ``python -m module argv`` on ``layout.world_size`` ranks; returns the exit code."""
    return RankJob(module, argv, layout, run_dir).wait(deadline_s)


def _threads(layout: Layout) -> int:
    return max(1, (os.cpu_count() or 1) // layout.world_size)


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
