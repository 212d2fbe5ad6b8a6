"""A dead rank fails the whole job fast, named; a bad layout never starts a rank."""

import signal
import subprocess
import sys
import time

import psutil
import pytest


def rank_processes(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if marker in " ".join(cmd) and "logitsmatch.engine.generate" in cmd:
            found.append(proc)
    return found


def test_killing_one_of_eight_ranks_fails_the_job_within_30s(tmp_path):
    run_dir = tmp_path / "fault-run"
    cmd = [
        sys.executable,
        "-m",
        "logitsmatch.cli",
        "generate",
        "--model",
        "smollm2-135m",
        "--prompts",
        "Tell me a long story about a dragon",
        "--num-tokens-to-generate",
        "400",
        "--pipeline-model-parallel-size",
        "8",
        "--output-path",
        str(tmp_path / "o.json"),
        "--run-dir",
        str(run_dir),
    ]
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            logs = list(run_dir.glob("rank-logs/rank*.log"))
            ready = [p for p in logs if "ready in" in p.read_text(errors="replace")]
            if len(ready) == 8:
                break
            assert job.poll() is None, job.communicate()[1]
            time.sleep(0.5)
        else:
            pytest.fail("8 ranks never became ready")
        time.sleep(2.0)  # let generation run
        victims = [p for p in rank_processes(str(run_dir)) if p.environ().get("RANK") == "3"]
        assert len(victims) == 1
        killed_at = time.monotonic()
        victims[0].send_signal(signal.SIGKILL)
        _, stderr = job.communicate(timeout=60)
        elapsed = time.monotonic() - killed_at
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0
    assert elapsed < 30, elapsed
    assert "rank 3 (tp=0 pp=3 dp=0) failed first (killed by SIGKILL)" in stderr
    time.sleep(0.5)
    assert rank_processes(str(run_dir)) == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tensor-model-parallel-size", "2"], "does not divide the 9 attention heads"),
        (["--pipeline-model-parallel-size", "31"], "more stages than the model's 30 layers"),
        (["--pipeline-model-parallel-size", "2", "--pipeline-layer-split", "10,10"], "sum to 30"),
    ],
)
def test_bad_layout_is_rejected_before_any_rank_starts(tmp_path, flags, message):
    run_dir = tmp_path / "never"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "logitsmatch.cli",
            "generate",
            "--model",
            "smollm2-135m",
            "--prompts",
            "x",
            "--output-path",
            str(tmp_path / "o.json"),
            "--run-dir",
            str(run_dir),
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not run_dir.exists()
