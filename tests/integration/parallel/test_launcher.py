"""engine/launch.py: real rank processes meeting in a real FileStore; a rank that never
arrives fails the job within the rendezvous deadline, named, instead of holding it until the
case's deadline."""

from __future__ import annotations

import time
from pathlib import Path

from logitsmatch.engine import launch
from logitsmatch.engine.layout import Layout

# Rank 1 is stuck before it can join (an import that hangs, a wedged device); rank 0 joins.
_STUCK_RANK = """
import os, time
from logitsmatch.engine import distributed
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
if rank == 1:
    time.sleep(600)
store = distributed.rendezvous(
    os.environ["LOGITSMATCH_RENDEZVOUS"], rank, world,
    float(os.environ["LOGITSMATCH_RENDEZVOUS_TIMEOUT_S"]),
)
print("joined", flush=True)
"""

_BOTH_JOIN = """
import os
from logitsmatch.engine import distributed
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
store = distributed.rendezvous(os.environ["LOGITSMATCH_RENDEZVOUS"], rank, world, 30.0)
store.set(f"hello/{rank}", str(os.getpid()))
print("peer", store.get(f"hello/{1 - rank}").decode(), flush=True)
"""


def _module(tmp_path: Path, name: str, code: str, monkeypatch) -> str:
    (tmp_path / f"{name}.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return name


def test_the_default_rendezvous_deadline_is_under_two_minutes():
    assert launch.RENDEZVOUS_TIMEOUT_S < 120


def test_a_rank_that_never_arrives_fails_the_job_at_the_rendezvous_deadline(
    tmp_path, monkeypatch, capsys
):
    module = _module(tmp_path, "stuck_rank", _STUCK_RANK, monkeypatch)
    monkeypatch.setenv(launch.RENDEZVOUS_TIMEOUT_ENV, "3")
    start = time.monotonic()
    code = launch.launch_ranks(module, [], Layout(tp=2), deadline_s=120, run_dir=tmp_path / "r")
    elapsed = time.monotonic() - start
    assert code == 1
    assert elapsed < 30  # 3 s of deadline plus the interpreter's start, not the job's 120 s
    report = capsys.readouterr().err
    assert "rank 0 (tp=0 pp=0 dp=0) failed first (exit code 1)" in report
    assert "rendezvous failed: rank(s) [1] of 2 did not arrive within 3 s" in report


def test_ranks_meet_and_share_the_store_then_the_job_exits_zero(tmp_path, monkeypatch):
    module = _module(tmp_path, "both_join", _BOTH_JOIN, monkeypatch)
    job = launch.RankJob(module, [], Layout(tp=2), tmp_path / "r")
    assert job.wait(60) == 0
    logs = [(tmp_path / "r" / "rank-logs" / f"rank{r}.log").read_text() for r in (0, 1)]
    # each rank read the other's pid through the store
    assert logs[0].split() == ["peer", str(job.procs[1].pid)]
    assert logs[1].split() == ["peer", str(job.procs[0].pid)]
    assert not list((tmp_path / "r").glob("rendezvous-*"))  # the store cleans up after itself
