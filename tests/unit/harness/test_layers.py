"""Imports point down: engine <- serving <- harness <- ci; no module imports a layer above it."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src" / "logitsmatch"
ABOVE = {
    "engine": ("logitsmatch.serving", "logitsmatch.harness", "logitsmatch.ci"),
    "serving": ("logitsmatch.harness", "logitsmatch.ci"),
    "harness": ("logitsmatch.ci",),
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_no_layer_imports_one_above_it(layer):
    files = sorted((SRC / layer).rglob("*.py"))
    assert files
    upward = {
        f"{path.relative_to(SRC)}: {name}"
        for path in files
        for name in _imports(path)
        if name.startswith(ABOVE[layer])
    }
    assert not upward
