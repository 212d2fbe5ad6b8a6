"""environment_changes: what differs between a golden's provenance and this machine."""

from logitsmatch.harness.goldens.provenance import (
    PACKAGES,
    current_environment,
    engine_source,
    environment_changes,
)

RECORDED = {
    "platform": "dgx_h100",
    "engine": "builtin",
    "engine_commit": "9e9642f70633bf3feca6c26ff16e2462dec72fe1+dirty",
    "packages": {name: "1.0" for name in PACKAGES} | {"torch": "2.11.0"},
    "python": "3.12.3",
    "device_name": "NVIDIA H100 80GB HBM3",
    "cpu_model": "Intel(R) Xeon(R) Processor",
}


def _current(**changes):
    current = {key: RECORDED[key] for key in current_environment("cpu") if key in RECORDED}
    current["packages"] = dict(RECORDED["packages"])
    for key, value in changes.items():
        if key in PACKAGES:
            current["packages"][key] = value
        else:
            current[key] = value
    return current


def test_the_same_environment_has_no_changes():
    assert environment_changes(RECORDED, _current()) == []


def test_each_change_is_one_item_old_to_new_with_short_commits():
    current = _current(
        torch="2.13.0+cpu",
        python="3.11.7",
        device_name="NVIDIA H200",
        engine_commit="7e32716" + "0" * 33,
    )
    assert environment_changes(RECORDED, current) == [
        "engine commit 9e9642f70633+dirty -> 7e3271600000",
        "torch 2.11.0 -> 2.13.0+cpu",
        "python 3.12.3 -> 3.11.7",
        "device NVIDIA H100 80GB HBM3 -> NVIDIA H200",
    ]


def test_software_is_left_out_for_an_engine_of_its_own():
    current = _current(torch="2.13.0", cpu_model="AMD EPYC")
    assert environment_changes(RECORDED, current, software=False) == [
        "cpu Intel(R) Xeon(R) Processor -> AMD EPYC"
    ]


def test_on_cpu_the_device_is_the_cpu_and_is_named_once():
    recorded = RECORDED | {"device_name": "Intel(R) Xeon(R)", "cpu_model": "Intel(R) Xeon(R)"}
    current = _current(device_name="AMD EPYC", cpu_model="AMD EPYC")
    assert environment_changes(recorded, current) == ["device Intel(R) Xeon(R) -> AMD EPYC"]


def test_fields_a_golden_lacks_are_not_reported():
    assert environment_changes({"device_name": "X"}, _current(device_name="X")) == []


SOURCE = {"sha256": "a" * 64, "files": {"engine/engine.py": "1" * 16, "record.py": "2" * 16}}
NEW_COMMIT = "7e32716" + "0" * 33


def test_a_new_commit_with_the_same_engine_source_is_no_change():
    recorded = RECORDED | {"engine_source": SOURCE}
    current = _current(engine_commit=NEW_COMMIT, engine_source=SOURCE)
    assert environment_changes(recorded, current) == []


def test_a_changed_engine_source_names_its_files_and_the_commits():
    recorded = RECORDED | {"engine_source": SOURCE}
    files = {"engine/engine.py": "3" * 16, "engine/new.py": "4" * 16}
    current = _current(engine_commit=NEW_COMMIT, engine_source={"sha256": "b" * 64, "files": files})
    assert environment_changes(recorded, current) == [
        "engine source (engine/engine.py changed, engine/new.py added, record.py removed; "
        "commit 9e9642f70633+dirty -> 7e3271600000)"
    ]


def test_this_checkout_hashes_every_engine_file_and_no_harness_file():
    files = engine_source()["files"]
    assert "engine/engine.py" in files and "serving/coordinator.py" in files
    assert "record.py" in files
    assert not any(name.startswith(("harness/", "ci/")) for name in files)
    assert engine_source() == engine_source()  # content, not time: the same twice
