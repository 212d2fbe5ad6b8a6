"""Run folders: unique per run (same target, same second, same process), env-overridable parent."""

from logitsmatch.harness.run.folders import RUN_DIR_ENV, new_run_folder, target_parent


def test_runs_at_the_same_time_get_their_own_folders(tmp_path):
    parent = tmp_path / "runs" / "case@cpu"
    folders = [new_run_folder(parent, now=0.0, pid=42) for _ in range(3)]
    assert [f.name for f in folders] == [
        "19700101T000000Z-42",
        "19700101T000000Z-42-1",
        "19700101T000000Z-42-2",
    ]
    assert all(f.is_dir() and not any(f.iterdir()) for f in folders)


def test_parent_is_runs_target_unless_the_environment_says(tmp_path):
    assert target_parent("c@cpu", runs_root=tmp_path, environ={}) == tmp_path / "c@cpu"
    override = {RUN_DIR_ENV: str(tmp_path / "ci")}
    assert target_parent("c@cpu", runs_root=tmp_path, environ=override) == tmp_path / "ci"
