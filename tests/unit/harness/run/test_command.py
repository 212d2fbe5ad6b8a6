"""Engine commands: real processes, a deadline that kills the whole group, failures named."""

import os
import sys
import textwrap
import time

from logitsmatch.harness.run.command import describe_failure, run_engine


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_passing_command_with_output(tmp_path):
    out = tmp_path / "out.json"
    argv = [sys.executable, "-c", f"open({str(out)!r}, 'w').write('{{}}'); print('hi')"]
    run = run_engine(
        argv, output_path=out, log_path=tmp_path / "e.log", env=os.environ, deadline_s=60
    )
    assert run.error is None and run.returncode == 0
    assert "hi" in run.log_path.read_text() and run.log_path.read_text().startswith("$ ")


def test_exit_0_without_output_is_an_error(tmp_path):
    run = run_engine(
        [sys.executable, "-c", "pass"],
        output_path=tmp_path / "o.json",
        log_path=tmp_path / "e.log",
        env=os.environ,
        deadline_s=60,
    )
    assert run.error is not None and "wrote no output" in run.error


def _python(code: str, tmp_path, deadline_s: float = 60):
    """``python -c code`` as an engine run, its output and log in ``tmp_path``."""
    return run_engine(
        [sys.executable, "-c", code],
        output_path=tmp_path / "o.json",
        log_path=tmp_path / "e.log",
        env=os.environ,
        deadline_s=deadline_s,
    )


def test_a_crash_says_the_exit_code_and_ends_with_the_log_tail(tmp_path):
    code = "import sys; print('boom: bad things', file=sys.stderr); sys.exit(3)"
    run = _python(code, tmp_path)
    assert run.returncode == 3
    head, *tail = run.error.splitlines()
    assert head == f"the engine exited 3; engine log: {tmp_path / 'e.log'}"
    assert tail[-1] == "boom: bad things"


def test_the_deadline_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    # The command starts a grandchild and both sleep: both must be gone after the deadline.
    code = textwrap.dedent(f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        time.sleep(120)
    """)
    start = time.monotonic()
    run = run_engine(
        [sys.executable, "-c", code],
        output_path=tmp_path / "o.json",
        log_path=tmp_path / "e.log",
        env=os.environ,
        deadline_s=1.5,
    )
    assert time.monotonic() - start < 15
    assert run.returncode is None
    assert run.error.startswith("the engine passed the case's 2 s deadline and was killed")
    deadline = time.monotonic() + 5
    while _pid_alive(int(pidfile.read_text())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(int(pidfile.read_text()))


def test_the_failing_rank_from_the_launcher_report_is_named(tmp_path):
    # The lines the builtin engine's launcher (engine/launch.py) prints when a rank dies.
    log = (
        "logitsmatch: rank 3 (tp=1 pp=1 dp=0) failed first (exit code 1).\n"
        "--- last lines of /r/rank-logs/rank3.log ---\n"
        "RuntimeError: shapes do not match\n"
    )
    error = describe_failure(1, log, tmp_path / "engine.log", 900)
    assert error.splitlines()[0] == (
        "the engine crashed: rank 3 (tp=1 pp=1 dp=0) failed first (exit code 1); "
        f"rank log: /r/rank-logs/rank3.log; engine log: {tmp_path / 'engine.log'}"
    )
    assert error.splitlines()[-1] == "RuntimeError: shapes do not match"
    assert describe_failure(0, log, tmp_path / "engine.log", 900) is None
    timed_out = describe_failure(124, "killed", tmp_path / "engine.log", 900)
    assert timed_out.startswith("the engine passed the case's 900 s deadline")


def test_a_sigkill_before_the_deadline_is_not_called_the_deadline(tmp_path):
    code = "import os, signal, time; time.sleep(0.3); os.kill(os.getpid(), signal.SIGKILL)"
    run = _python(code, tmp_path, deadline_s=300)
    assert run.returncode == -9
    first = run.error.splitlines()[0]
    assert first.startswith("the engine was killed by SIGKILL after 0.")
    assert "before the case's 300 s deadline" in first and "passed" not in first
