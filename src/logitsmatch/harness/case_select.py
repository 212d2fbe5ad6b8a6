"""Find cases from the command line: a name in cases/, a case file or a Megatron case folder."""

from __future__ import annotations

from pathlib import Path

from logitsmatch.harness.case import MEGATRON_CONFIG, Case, CaseError, load_case

DEFAULT_CASES_DIR = Path("cases")


def find_case(spec: str, cases_dir: Path = DEFAULT_CASES_DIR) -> Case:
    """``spec``: a case name (cases/<name>.yaml or cases/<name>/), or a path to a case file or
    folder; a CaseError listing the known names when there is no such case."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or (path / MEGATRON_CONFIG).is_file():
        return load_case(path)
    for candidate in (cases_dir / f"{spec}.yaml", cases_dir / f"{spec}.yml", cases_dir / spec):
        if candidate.is_file() or (candidate / MEGATRON_CONFIG).is_file():
            return load_case(candidate)
    known = sorted(p.stem for p in cases_dir.glob("*.y*ml")) if cases_dir.is_dir() else []
    raise CaseError(
        f"no case {spec!r} in {cases_dir}/ (known: {', '.join(known) or 'none'}); "
        "give a case name, a case .yaml file or a Megatron case folder"
    )
