"""``python -m logitsmatch.serving.coordinator`` as a process: binding rules, address, signals."""

from __future__ import annotations

import signal
import subprocess
import sys

from logitsmatch.serving.launch import start_coordinator


def test_refuses_a_non_loopback_bind_without_curve_or_insecure():
    done = subprocess.run(
        [sys.executable, "-m", "logitsmatch.serving.coordinator", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "refusing to bind '0.0.0.0'" in done.stderr and "--insecure" in done.stderr


def test_port_zero_is_reported_and_sigint_exits_cleanly(tmp_path, leftovers):
    service = start_coordinator(log_dir=tmp_path)
    try:
        host, port = service.address.removeprefix("tcp://").rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        assert leftovers.listening(int(port))
        service.process.send_signal(signal.SIGINT)
        assert service.process.wait(10) == 0
        assert f"listening on {service.address}" in service.log_tail()
        assert not leftovers.listening(int(port))
    finally:
        service.stop(5)
