"""A local wheel index for the image's torch: the pinned torch and its dependencies, fetched by
this host's pip (whatever index, mirror or local wheel folder it is configured with), laid out
as a PEP 503 simple index and served on 127.0.0.1 for the build (``--network host``).

For builds that must not reach the public torch index: the Dockerfile's ``TORCH_INDEX_URL``
points here. Stdlib only.
"""

from __future__ import annotations

import html
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from logitsmatch.ci.podman import StepFailed, run_step
from logitsmatch.process_group import die_with_parent, kill_group

PYTHON_VERSION = "3.11"  # the local base's (base_image.py), which the wheels must fit


def normalize(name: str) -> str:
    """PEP 503's project name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def write_simple_index(wheels: Path) -> None:
    """``wheels/simple/<project>/index.html`` for every wheel in ``wheels``."""
    projects: dict[str, list[str]] = {}
    for wheel in sorted(wheels.glob("*.whl")):
        projects.setdefault(normalize(wheel.name.split("-")[0]), []).append(wheel.name)
    if not projects:
        raise StepFailed(f"step 'wheels': no wheels in {wheels}")
    root = wheels / "simple"
    for project, files in projects.items():
        (root / project).mkdir(parents=True, exist_ok=True)
        links = "".join(f'<a href="../../{html.escape(f)}">{html.escape(f)}</a>\n' for f in files)
        (root / project / "index.html").write_text(links)
    (root / "index.html").write_text("".join(f'<a href="{p}/">{p}</a>\n' for p in projects))


def download(constraints: Path, wheels: Path, log: Path) -> None:
    """The pins of ``constraints`` and their dependencies, as wheels for the base's Python."""
    wheels.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(wheels)]
    argv += ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "-r", str(constraints)]
    run_step("wheels", argv, log=log)
    write_simple_index(wheels)


# why a fixed port: the index URL is a build arg, and a build arg that changes makes the builder
# rerun every step after it (torch included); another port is taken only when this one is busy.
DEFAULT_PORT = 18655


class WheelServer:
    """``python -m http.server`` over ``wheels`` on loopback, for one build: on ``port``, or a
    free port when that one is taken (or ``port`` is 0)."""

    def __init__(self, wheels: Path, port: int = DEFAULT_PORT) -> None:
        if port and not _free(port):
            print(f"image: [wheels] 127.0.0.1:{port} is taken; a free port (no layer cache)")
            port = 0
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", str(port)],
            cwd=wheels,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        assert self.proc.stdout is not None
        # "Serving HTTP on 127.0.0.1 port 43211 (http://127.0.0.1:43211/) ..."
        line = self.proc.stdout.readline()
        found = re.search(r"port (\d+)", line)
        if not found:
            self.stop()
            raise StepFailed(f"step 'wheels': the index server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{found.group(1)}/simple"
        # why: the server logs every request; an unread pipe would fill and stall it
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        self._wait_until_up()

    def _wait_until_up(self, timeout_s: float = 10) -> None:
        end = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2):
                    return
            except OSError:
                if time.monotonic() > end:
                    self.stop()
                    raise StepFailed(f"step 'wheels': {self.url} did not answer") from None
                time.sleep(0.1)

    def stop(self) -> None:
        kill_group(self.proc)  # type: ignore[arg-type]


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
