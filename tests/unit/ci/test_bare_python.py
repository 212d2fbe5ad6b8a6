"""logitsmatch.ci runs from the checkout on a bare python: stdlib + pyyaml, and `repro` (with the
platform table and the case lookup) stdlib only, as GitLab's docker:cli job has no pyyaml."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("torch", "numpy", "rich", "matplotlib", "zmq", "msgpack", "gguf", "tokenizers")


def _import_with(blocked: tuple[str, ...], modules: list[str]) -> subprocess.CompletedProcess:
    # why: None in sys.modules makes `import name` raise ImportError, as if not installed.
    code = textwrap.dedent(f"""
        import sys
        for name in {blocked!r}:
            sys.modules[name] = None
        sys.path.insert(0, {str(ROOT / "src")!r})
        import importlib
        for module in {modules!r}:
            importlib.import_module(module)
    """)
    return subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "module",
    [
        "logitsmatch.ci",
        "logitsmatch.ci.targets",
        "logitsmatch.ci.runners",
        "logitsmatch.ci.matrix",
        "logitsmatch.ci.repro",
        "logitsmatch.ci.lint",
        "logitsmatch.ci.report",
        "logitsmatch.harness.cases",
    ],
)
def test_imports_without_torch_rich_or_numpy(module: str) -> None:
    proc = _import_with(HEAVY, [module])
    assert proc.returncode == 0, proc.stderr


def test_repro_and_the_platform_table_need_only_the_stdlib() -> None:
    modules = ["logitsmatch.ci.repro", "logitsmatch.ci.targets", "logitsmatch.ci.runners"]
    proc = _import_with((*HEAVY, "yaml"), modules)
    assert proc.returncode == 0, proc.stderr
