"""`logitsmatch record` end to end: provenance, an empty diff when nothing changed, and no
golden from a crashed or NaN run."""

import json
import shlex
import sys

from e2e_project import CASE, REPO, logitsmatch, write_case


def test_golden_has_provenance_and_a_rerecord_without_change_is_empty(recorded):
    golden = json.loads((recorded / "golden" / "cpu" / f"{CASE}.json").read_text())
    provenance = golden["_provenance"]
    assert provenance["platform"] == "cpu" and provenance["engine"] == "builtin"
    assert provenance["engine_commit"] != "unknown" and provenance["packages"]["torch"]
    assert provenance["command"].startswith("python -m logitsmatch.cli generate --model tiny")
    assert set(golden) == {
        "_provenance",
        "0",
        "1",
        "throughput",
        "lifetime_prefill_token_count",
        "mem-max-allocated-bytes",
    }
    assert len(golden["0"]["generated_tokens"]) == 6
    again = logitsmatch(recorded, "record", CASE, "--platform", "cpu")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith(f"{CASE}.json: no change")


def test_a_crashed_run_is_not_recorded(tmp_path):
    crash = shlex.join([sys.executable, "-c", "import sys; sys.exit(1)"]) + " {output_path}"
    write_case(tmp_path / "cases", "crash", engine=crash)
    proc = logitsmatch(tmp_path, "record", "crash")
    assert proc.returncode == 1
    assert "refusing to write" in proc.stderr and "the run failed: the engine exited 1" in (
        proc.stderr
    )
    assert not (tmp_path / "golden" / "cpu" / "crash.json").exists()


def test_a_nan_run_is_not_recorded(tmp_path):
    engine = f"{shlex.quote(sys.executable)} {REPO / 'tests/e2e/perturbed_engine.py'} "
    write_case(
        tmp_path / "cases",
        "nan",
        engine=engine + "--perturb-nan {model_args} --output-path {output_path}",
    )
    proc = logitsmatch(tmp_path, "record", "nan")
    assert proc.returncode == 1
    assert "refusing to write" in proc.stderr and "is NaN/inf" in proc.stderr
    assert not (tmp_path / "golden" / "cpu" / "nan.json").exists()
