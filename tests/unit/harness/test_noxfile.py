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
    proc = _nox("-l", "--json", "-k", "logitsmatch or record", cwd=ROOT, PYTHONPATH=str(tmp_path))
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


def _nox(*args: str, cwd: Path, **env_vars: str) -> subprocess.CompletedProcess:
    """nox on this noxfile, with this interpreter's bin folder first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    path = bin_dir + os.pathsep + os.environ.get("PATH", "")
    env = dict(os.environ, PATH=path, **env_vars)
    return subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_platform_option_parses_either_way_and_skipping_everything_fails(tmp_path):
    for posargs in (["--platform", "dgx_h100"], ["--platform=dgx_h100"]):
        proc = _nox("-s", "logitsmatch", "--", *posargs, "--runs-root", str(tmp_path), cwd=ROOT)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out
        assert "check --all-if-none " + " ".join(posargs) in out
        targets = sum(1 for _ in (ROOT / "cases").glob("*.yaml"))
        assert f"no target ran ({targets} skipped" in out
        assert "Session logitsmatch failed" in out


def test_a_platform_typo_fails_before_anything_runs(tmp_path):
    proc = _nox(
        "-s", "logitsmatch", "--", "--platform", "cpuu", "--runs-root", str(tmp_path), cwd=ROOT
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out  # nox's own status for a failed session
    assert "--platform 'cpuu' is not a known platform; did you mean 'cpu'?" in out
    assert not any(tmp_path.iterdir())


def test_every_session_description_is_a_whole_sentence():
    keywords = "logitsmatch or megatron or record or tests or typecheck or lint or repro"
    proc = _nox("-l", "--json", "-k", keywords, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    sessions = json.loads(proc.stdout)
    assert {"megatron", "tests", "lint", "repro"} <= {s["session"] for s in sessions}
    cut = [s["session"] for s in sessions if not (s["description"] or "").endswith(".")]
    assert cut == []
