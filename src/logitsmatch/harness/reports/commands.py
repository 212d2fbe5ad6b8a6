"""The commands that reproduce and re-record a case target (the nox naming contract).

A case of the project (``cases/<name>.yaml`` or a corpus folder, run from the repository root)
has a nox session of its own: ``nox -s "logitsmatch-<case>@<platform>"``. A case given by path
has none (its name could even clash with a shipped case's), so its lines name the file:
``logitsmatch check PATH --platform P``, with the path relative to the working directory when it
lies below it, else absolute, so that the line works where it is printed.
"""

from __future__ import annotations

import shlex
from pathlib import Path

# Where the project's own cases live, from the repository root (cases/, the Megatron corpus).
_CASE_FILES = (
    "cases/{name}.yaml",
    "cases/{name}.yml",
    "tests/data/megatron/{name}/model_config.yaml",
)


def repro_command(case: str, platform: str, source: str = "") -> str:
    """The command that runs exactly this case on this platform (``source``: its case file;
    empty: a case of the project)."""
    path = _by_path(case, source)
    if path is not None:
        return f"logitsmatch check {path} --platform {platform}"
    return f'nox -s "logitsmatch-{case}@{platform}"'


def record_command(case: str, platform: str, source: str = "") -> str:
    """The command that re-records this case's golden for this platform."""
    path = _by_path(case, source)
    if path is not None:
        return f"logitsmatch record {path} --platform {platform}"
    return f"nox -s record -- {case} --platform {platform}"


def command_footer(case: str, platform: str, source: str = "") -> str:
    """The two lines every failure message ends with."""
    return (
        f"reproduce: {repro_command(case, platform, source)}\n"
        f"re-record: {record_command(case, platform, source)}"
    )


def _by_path(case: str, source: str) -> str | None:
    """The case file as a shell word when it is not one of the project's cases seen from here
    (None: the nox session names it)."""
    if not source:
        return None
    here = Path.cwd().resolve()
    file = Path(source).resolve()
    if any(file == here / pattern.format(name=case) for pattern in _CASE_FILES):
        return None
    where = file.parent if file.name == "model_config.yaml" else file
    try:
        shown = str(where.relative_to(here))
    except ValueError:
        shown = str(where)
    return shlex.quote(shown)
