"""Find a case from the command line: a name in cases/, a case file or a Megatron case folder.

The one lookup every command uses (``check``, ``record``, ``compare --case``).
"""

from __future__ import annotations

from pathlib import Path

from logitsmatch.harness.cases.fields import CaseError
from logitsmatch.harness.cases.schema import MEGATRON_CONFIG, Case, load_case

DEFAULT_CASES_DIR = Path("cases")
# Megatron-LM's vendored case folders: found by name too (`record FOLDER`, `check FOLDER`).
CORPUS_DIR = Path("tests") / "data" / "megatron"


class CaseNotFound(CaseError):
    """No case of that name in the cases folder, and no such case file or folder."""


def find_case(spec: str, cases_dir: Path = DEFAULT_CASES_DIR) -> Case:
    """``spec``: a case name (cases/<name>.yaml or cases/<name>/, else a folder of Megatron-LM's
    corpus, tests/data/megatron/<name>/), or a path to a case file or folder; a CaseNotFound
    listing the known names when there is no such case."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or (path / MEGATRON_CONFIG).is_file():
        return load_case(path)
    candidates = (cases_dir / f"{spec}.yaml", cases_dir / f"{spec}.yml", cases_dir / spec)
    for candidate in (*candidates, CORPUS_DIR / spec):
        if candidate.is_file() or (candidate / MEGATRON_CONFIG).is_file():
            return load_case(candidate)
    known = sorted(p.stem for p in cases_dir.glob("*.y*ml")) if cases_dir.is_dir() else []
    raise CaseNotFound(
        f"no case {spec!r} in {cases_dir}/ (known: {', '.join(known) or 'none'}); "
        "give a case name, a case .yaml file or a Megatron case folder"
    )
