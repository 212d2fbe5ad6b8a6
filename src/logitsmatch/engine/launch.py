"""Start a multi-rank job on this host with torchrun, and fail it fast and loudly.

torchrun (``torch.distributed.run``, one node, rendezvous on 127.0.0.1) starts the ranks,
watches them every 0.1 s and stops the rest when one fails. This wrapper adds what a CI job
needs on top: a whole-run deadline, per-rank logs in a run folder, and, on failure, which
rank died (with its tp/pp/dp coordinates), its exit code or signal, and the tail of its log.
It kills the whole process group on the way out, so no rank outlives it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from logitsmatch.engine.layout import Layout
from logitsmatch.process_group import die_with_parent, kill_group

_ROOT_CAUSE = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank: \d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)")


def torchrun_command(module: str, argv: list[str], nproc: int, log_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        # why not --standalone: it publishes this host's name as the rendezvous address, and
        # where the name does not resolve (a container without a network) the ranks wait
        # forever; one node on loopback needs no name.
        "--nnodes=1",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=127.0.0.1:0",
        "--local-addr=127.0.0.1",
        f"--nproc-per-node={nproc}",
        "--monitor-interval=0.1",
        "--max-restarts=0",
        f"--log-dir={log_dir}",
        "--redirects=3",
        "-m",
        module,
        *argv,
    ]


class RankJob:
    """A running torchrun job; ``wait`` reaps it and reports a failure, ``stop`` kills it."""

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
        command = torchrun_command(module, argv, layout.world_size, self.log_dir)
        env = dict(
            os.environ,
            **(env or {}),
            PYTHONUNBUFFERED="1",
            OMP_NUM_THREADS=str(_threads(layout)),
            LOGITSMATCH_RANK_JOB="1",  # its ranks check their parent is this torchrun
        )
        with open(self.folder / "torchrun.log", "w") as agent_log:
            self.proc = subprocess.Popen(
                command,
                stdout=agent_log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, deadline_s: float) -> int:
        """Exit code of the job (124 past the deadline); prints which rank failed, if one did."""
        try:
            code = self.proc.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            self.stop()
            print(
                f"logitsmatch: {self.layout.world_size}-rank job passed its {deadline_s:.0f} s "
                f"deadline and was killed; rank logs: {self.log_dir}",
                file=sys.stderr,
            )
            return 124
        finally:
            self.stop()
        if code != 0:
            print(failure_report(self.folder, self.layout), file=sys.stderr)
        return code

    def stop(self) -> None:
        kill_group(self.proc)


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


def failure_report(folder: Path, layout: Layout) -> str:
    """Name the rank torchrun saw fail first, its exit code or signal, and its log tail."""
    agent = (folder / "torchrun.log").read_text(errors="replace")
    # torchrun lists every failed rank, then the first one under "Root Cause".
    root = agent.rfind("Root Cause")
    found = _ROOT_CAUSE.search(agent, max(root, 0))
    if not found:
        return f"logitsmatch: the {layout.world_size}-rank job failed; torchrun said:\n" + _tail(
            agent, 30
        )
    rank, code = int(found.group(1)), int(found.group(2))
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    lines = [f"logitsmatch: {layout.describe(rank)} failed first ({how})."]
    log = _rank_log(folder / "rank-logs", rank)
    if log is not None:
        lines.append(f"--- last lines of {log} ---")
        lines.append(_tail(log.read_text(errors="replace"), 20))
    return "\n".join(lines)


def _rank_log(log_dir: Path, rank: int) -> Path | None:
    # torchrun writes <log_dir>/<run id>/attempt_0/<local rank>/{stdout,stderr}.log
    candidates = sorted(log_dir.glob(f"*/attempt_*/{rank}/stderr.log"))
    return candidates[-1] if candidates else None


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
