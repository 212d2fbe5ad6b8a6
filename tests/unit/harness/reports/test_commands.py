"""Reproduce and re-record lines that work where they are printed."""

from logitsmatch.harness.reports.commands import command_footer, record_command, repro_command


def test_a_project_case_seen_from_the_repository_root_is_its_nox_session(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cases").mkdir()
    source = tmp_path / "cases" / "c.yaml"
    assert repro_command("c", "cpu", str(source)) == 'nox -s "logitsmatch-c@cpu"'
    assert record_command("c", "cpu", "cases/c.yaml") == "nox -s record -- c --platform cpu"
    folder = tmp_path / "tests" / "data" / "megatron" / "m" / "model_config.yaml"
    assert repro_command("m", "cpu", str(folder)) == 'nox -s "logitsmatch-m@cpu"'


def test_a_case_given_by_path_is_named_by_its_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    source = tmp_path / "mine" / "c.yaml"
    assert repro_command("c", "cpu", str(source)) == "logitsmatch check mine/c.yaml --platform cpu"
    assert command_footer("c", "cpu", str(source)).splitlines()[1] == (
        "re-record: logitsmatch record mine/c.yaml --platform cpu"
    )
    elsewhere = tmp_path / "sub"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not below here: the absolute path
    assert repro_command("c", "cpu", str(source)) == (f"logitsmatch check {source} --platform cpu")
    folder = tmp_path / "corpus" / "m" / "model_config.yaml"
    assert record_command("m", "cpu", str(folder)).startswith(
        f"logitsmatch record {folder.parent} "
    )
