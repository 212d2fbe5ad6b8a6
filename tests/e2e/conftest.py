"""Fixtures of the end-to-end tests (helpers: e2e_project.py)."""

from pathlib import Path

import pytest
from e2e_project import CASE, logitsmatch, write_case


@pytest.fixture(scope="session")
def recorded(tmp_path_factory) -> Path:
    """A project whose tiny case has a cpu golden recorded by `logitsmatch record`."""
    root = tmp_path_factory.mktemp("project")
    write_case(root / "cases")
    proc = logitsmatch(root, "record", CASE, "--platform", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "new golden" in proc.stdout
    return root
