"""The case targets nox lists: `nox -l --json` -> [Target(case, platform), ...].

nox's JSON listing holds only the *selected* sessions, and the noxfile selects `logitsmatch`
by default; every per-target session carries the tag `matrix`, so `nox -l --json -t matrix`
lists exactly the targets (and nothing else, however the other sessions are named).
Stdlib only (CI runners import this with a bare python3).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SESSION_PREFIX = "logitsmatch-"
# The command CI runs to list the sessions; `python -m nox` so the interpreter is explicit.
NOX_LIST_ARGS = ("-m", "nox", "--list", "--json", "-t", "matrix")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


@dataclass(frozen=True, order=True)
class Target:
    """One case on one platform: the nox session `logitsmatch-<case>@<platform>`."""

    case: str
    platform: str

    def __post_init__(self) -> None:
        for field, value in (("case", self.case), ("platform", self.platform)):
            if not _NAME.fullmatch(value):
                raise ValueError(
                    f"Target.{field}: {value!r} must be letters, digits, '_', '.', '-' "
                    "(it names a file, a nox session and a CI job)"
                )

    @property
    def id(self) -> str:
        """`<case>@<platform>`, the target id of the naming contract."""
        return f"{self.case}@{self.platform}"

    @property
    def session(self) -> str:
        """The nox session that runs this target."""
        return f"{SESSION_PREFIX}{self.id}"


def target_from_session(name: str) -> Target | None:
    """The target a session name stands for, or None for any other session."""
    if not name.startswith(SESSION_PREFIX) or "@" not in name:
        return None
    case, _, platform = name[len(SESSION_PREFIX) :].rpartition("@")
    return Target(case, platform)


def parse_nox_listing(text: str, source: str = "nox --list --json") -> list[Target]:
    """Every case target in a `nox -l --json` listing, sorted, duplicates rejected."""
    try:
        sessions = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not JSON ({exc}); first bytes: {text[:80]!r}") from None
    if not isinstance(sessions, list):
        kind = type(sessions).__name__
        raise ValueError(f"{source}: expected a JSON list of sessions, got a {kind}")
    targets: list[Target] = []
    for i, entry in enumerate(sessions):
        if not isinstance(entry, dict) or not isinstance(entry.get("session"), str):
            raise ValueError(f"{source}: entry {i} has no string 'session': {entry!r}")
        target = target_from_session(entry["session"])
        if target is not None:
            targets.append(target)
    duplicates = sorted({t.id for t in targets if targets.count(t) > 1})
    if duplicates:
        raise ValueError(f"{source}: targets listed twice: {duplicates}")
    return sorted(targets)


def list_targets(root: Path, timeout_s: float = 120.0) -> list[Target]:
    """Run the real `nox -l --json` in `root` and parse it (a deadline, never a hang)."""
    proc = subprocess.run(
        [sys.executable, *NOX_LIST_ARGS],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"`python {' '.join(NOX_LIST_ARGS)}` in {root} exited {proc.returncode}: "
            f"{proc.stderr.strip()[-2000:]}"
        )
    return parse_nox_listing(proc.stdout)
