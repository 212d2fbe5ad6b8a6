"""The image's base: one named by the caller (a registry image, or one already in the local
storage), or a Debian bookworm made here with debootstrap from the host's own package mirror,
for machines that reach no container registry.

The local base carries what the Dockerfile's ``PYTHON_IMAGE`` must: Python 3.11 (Debian's
3.11.2; the CPU torch wheel is cp311), pip, venv, ``python`` on PATH, and useradd. Stdlib only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from logitsmatch.ci.podman import Podman, StepFailed, run_step

LOCAL = "local"
LOCAL_BASE_REF = "localhost/logitsmatch-base:bookworm"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-pip", "python3-venv", "python-is-python3", "ca-certificates")
MIRROR_ENV = "LOGITSMATCH_DEBIAN_MIRROR"
BOOTSTRAP_RETRY_PAUSES_S = (15.0, 60.0)  # between the 3 tries of debootstrap
_APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))


def host_mirror(sources: tuple[Path, ...] = _APT_SOURCES) -> str | None:
    """The Debian mirror this host's apt uses (the one registry it is known to reach), or
    None to let debootstrap use its default. ``LOGITSMATCH_DEBIAN_MIRROR`` overrides it."""
    if os.environ.get(MIRROR_ENV):
        return os.environ[MIRROR_ENV]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        # deb822 (`URIs: ...` next to `Suites: bookworm ...`) or one-line (`deb URI bookworm ...`)
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1)
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                return parts[1]
    return None


def prepare_base(podman: Podman, base: str, log: Path) -> str:
    """The reference to build on: ``base`` itself (pulled when not stored yet), or for
    ``local`` a bootstrapped bookworm imported into the storage (reused when it is there)."""
    if base != LOCAL:
        if not podman.image_exists(base):
            podman.run("base", ["podman", "pull", base], log=log)
        return base
    if podman.image_exists(LOCAL_BASE_REF):
        print(f"image: [base] {LOCAL_BASE_REF} is stored already", flush=True)
        return LOCAL_BASE_REF
    rootfs = podman.state / "rootfs"
    mirror = host_mirror()
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE]
    argv += [str(rootfs), *([mirror] if mirror else [])]
    _bootstrap(argv, rootfs, log)
    # why: Debian marks its Python externally managed (PEP 668); this file system exists only
    # to be the image's Python, as the slim Python images' is.
    for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    _import(podman, rootfs, log)
    shutil.rmtree(rootfs, ignore_errors=True)
    return LOCAL_BASE_REF


def _bootstrap(argv: list[str], rootfs: Path, log: Path) -> None:
    """debootstrap, retried: a mirror mid-update serves a Release whose Packages file is not
    there yet ("Couldn't download .../Packages", seen once in a CI run; a minute later it
    worked), and debootstrap itself never retries."""
    for attempt, pause_s in enumerate((*BOOTSTRAP_RETRY_PAUSES_S, None), start=1):
        shutil.rmtree(rootfs, ignore_errors=True)  # why: a half-made one from a failed try
        try:
            run_step("base", argv, log=log)
            return
        except StepFailed as failed:
            if pause_s is None:
                raise
            print(f"image: [base] attempt {attempt} failed; again in {pause_s:.0f} s: {failed}")
            time.sleep(pause_s)


def _import(podman: Podman, rootfs: Path, log: Path) -> None:
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    try:
        podman.run("base", ["podman", "import", "-", LOCAL_BASE_REF], log=log, stdin=tar.stdout)
    finally:
        if tar.stdout:
            tar.stdout.close()
        if tar.wait() != 0:
            raise StepFailed(f"step 'base': tar of {rootfs} exited {tar.returncode}")
