"""The ``logitsmatch`` command's own surface: help, unknown commands, generate's --zmq."""

import pytest

from logitsmatch.cli import COMMANDS, main


def test_help_lists_every_command_with_one_line(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("generate", "serve", "check", "record", "compare"):
        assert any(line.startswith(f"  {name} ") for line in out.splitlines()), name
    assert set(COMMANDS) == {"generate", "serve", "check", "record", "compare"}


def test_an_unknown_command_is_named_with_the_nearest(capsys):
    assert main(["chek"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'chek'; did you mean 'check'?" in err
    assert main([]) == 2  # no command: the usage, and not a success


def test_generate_help_shows_the_zmq_path(capsys):
    with pytest.raises(SystemExit) as done:
        main(["generate", "--help"])
    assert done.value.code == 0
    assert "--zmq" in capsys.readouterr().out
