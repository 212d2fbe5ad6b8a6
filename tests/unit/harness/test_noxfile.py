"""The noxfile lists one session per case target with only nox and pyyaml importable."""

import json
import os
import subprocess
import sys
from pathlib import Path

from logitsmatch.harness.cases import load_all

ROOT = Path(__file__).resolve().parents[3]


def test_listing_needs_neither_torch_nor_the_engine(tmp_path):
    # Stand-ins that fail on import, first on the path: any import of them breaks the listing.
    for name in ("torch", "numpy", "rich", "gguf", "tokenizers", "zmq"):
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text(f"raise ImportError('{name} imported by nox -l')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "--json", "-k", "logitsmatch or record"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    sessions = {s["session"] for s in json.loads(proc.stdout)}
    expected = {
        f"logitsmatch-{case.name}@{platform}"
        for case in load_all(ROOT / "cases")
        for platform in case.platforms
    }
    assert expected and expected <= sessions
    assert {"logitsmatch", "record"} <= sessions
    assert all(s.startswith("logitsmatch") or s == "record" for s in sessions)
