"""Unique run folders: ``runs/<case>@<platform>/<timestamp>-<pid>[-n]/``.

Every run of a target gets a folder of its own (created exclusively, so two runs of the same
target at once, even in one process and one second, never share one); ``LOGITSMATCH_RUN_DIR``
replaces the parent ``runs/<case>@<platform>`` (``ci/run_case.sh`` sets it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

RUN_DIR_ENV = "LOGITSMATCH_RUN_DIR"
DEFAULT_RUNS_ROOT = Path("runs")
_MAX_TRIES = 1000


def target_parent(
    target_id: str,
    *,
    runs_root: Path = DEFAULT_RUNS_ROOT,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """Where the run folders of ``target_id`` go: ``$LOGITSMATCH_RUN_DIR`` or runs_root/target."""
    override = (os.environ if environ is None else environ).get(RUN_DIR_ENV)
    return Path(override) if override else runs_root / target_id


def new_run_folder(parent: Path, *, now: float | None = None, pid: int | None = None) -> Path:
    """Create and return a fresh folder ``parent/<UTC timestamp>-<pid>[-n]``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    base = f"{stamp}-{os.getpid() if pid is None else pid}"
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(_MAX_TRIES):
        folder = parent / (base if n == 0 else f"{base}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise RuntimeError(f"{parent}: {_MAX_TRIES} run folders named {base}* exist already")
