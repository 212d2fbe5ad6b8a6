"""nox's JSON listing -> case targets, against the real nox on a small noxfile."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from logitsmatch.ci.targets import (
    Target,
    list_targets,
    parse_nox_listing,
    target_from_session,
)

TOY_NOXFILE = textwrap.dedent(
    '''
    import nox

    nox.options.sessions = ["logitsmatch"]

    @nox.session(venv_backend="none")
    def logitsmatch(session):
        """Every case."""

    @nox.session(venv_backend="none")
    def tests(session):
        """Not a target."""

    @nox.session(venv_backend="none", name="logitsmatch-tiny_tp2@cpu", tags=["matrix"])
    def t1(session):
        """A target."""

    @nox.session(venv_backend="none", name="logitsmatch-gpt_pp8.v2@dgx_h100", tags=["matrix"])
    def t2(session):
        """Another."""
    '''
)


def _toy(tmp_path: Path) -> Path:
    (tmp_path / "noxfile.py").write_text(TOY_NOXFILE)
    return tmp_path


def test_list_targets_sees_every_target_despite_the_default_selection(tmp_path: Path) -> None:
    root = _toy(tmp_path)
    assert list_targets(root) == [Target("gpt_pp8.v2", "dgx_h100"), Target("tiny_tp2", "cpu")]
    # why the listing needs -t matrix: plain `nox -l --json` prints only the selected sessions.
    plain = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert [s["session"] for s in json.loads(plain.stdout)] == ["logitsmatch"]


def test_list_targets_names_the_failure(tmp_path: Path) -> None:
    (tmp_path / "noxfile.py").write_text("raise RuntimeError('broken noxfile')\n")
    with pytest.raises(RuntimeError, match="broken noxfile"):
        list_targets(tmp_path)


def test_target_ids_and_sessions() -> None:
    target = Target("a_b", "cpu")
    assert (target.id, target.session) == ("a_b@cpu", "logitsmatch-a_b@cpu")
    assert target_from_session("logitsmatch-a_b@cpu") == target
    assert target_from_session("logitsmatch") is None
    assert target_from_session("record") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nox > oops", "not JSON"),
        ('{"session": "x"}', "expected a JSON list"),
        ('[{"name": "x"}]', "entry 0 has no string 'session'"),
        ('[{"session": "logitsmatch-a@cpu"}, {"session": "logitsmatch-a@cpu"}]', "listed twice"),
        ('[{"session": "logitsmatch-a b@cpu"}]', "Target.case: 'a b'"),
        ('[{"session": "logitsmatch-a@"}]', "Target.platform: ''"),
    ],
)
def test_bad_listings_are_rejected_by_name(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_nox_listing(text, source="nox.json")
