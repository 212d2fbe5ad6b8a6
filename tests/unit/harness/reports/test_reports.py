"""Reports: JUnit XML counts, markdown with the commands, step summary, plots, terminal."""

import copy
import io
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from logitsmatch.harness.judge import compare
from logitsmatch.harness.reports import (
    OutcomeStatus,
    TargetOutcome,
    outcome_from_verdict,
    outcome_without_golden,
    write_reports,
)
from logitsmatch.harness.reports.junit import render_junit
from logitsmatch.harness.reports.markdown import render_markdown, write_step_summary
from logitsmatch.harness.reports.plot import draw_verdict, plot_verdict

PASSED, FAILED, ERROR, SKIPPED, XFAILED, NOT_COMPARABLE = OutcomeStatus

GOLDEN = {
    "0": {
        "generated_text": " a b c",
        "generated_tokens": [11, 12, 13],
        "logprobs": [-1.0, -2.0, -0.5, -0.25, -0.125],
        "top_n_logprobs": [{"11": -0.5}, {"12": -0.25, "14": -0.26}, {"13": -0.125}],
    },
    "1": {"generated_text": " d", "generated_tokens": [21], "logprobs": [-3.0, -0.5]},
}


def broken():
    current = copy.deepcopy(GOLDEN)
    current["0"]["generated_tokens"][1] = 14
    current["0"]["logprobs"][3] = -0.2
    current["0"]["top_n_logprobs"][1] = {"14": -0.2, "12": -0.21}
    return current


@pytest.fixture
def outcomes():
    failed = outcome_from_verdict(
        compare(GOLDEN, broken(), case="mixed", platform="cpu"), duration_s=3.5
    )
    passed = outcome_from_verdict(
        compare(GOLDEN, GOLDEN, case="ref", platform="cpu"), duration_s=1.25
    )
    xfailed = outcome_from_verdict(
        compare(GOLDEN, broken(), case="known", platform="cpu"), expected="xfail", reason="issue 12"
    )
    skipped = TargetOutcome("ref", "dgx_h100", SKIPPED, "needs 8 GPUs, found 0")
    missing = outcome_without_golden("new", "cpu", "golden/cpu/new.json")
    return [passed, failed, xfailed, skipped, missing]


def test_outcome_statuses_follow_the_case_expectation(outcomes):
    assert [o.status for o in outcomes] == [PASSED, FAILED, XFAILED, SKIPPED, ERROR]
    xpass = outcome_from_verdict(
        compare(GOLDEN, GOLDEN, case="k", platform="cpu"), expected="xfail", reason="issue 12"
    )
    assert xpass.status == FAILED and "remove the mark" in xpass.reason
    not_recorded = outcome_without_golden(
        "new", "h100", "golden/h100/new.json", expected="not_recorded", reason="no machine"
    )
    assert not_recorded.status == SKIPPED and "no golden for this platform" in not_recorded.reason


def test_every_failure_message_ends_with_reproduce_and_re_record(outcomes):
    for outcome in outcomes:
        if not outcome.ok:
            tail = outcome.message().splitlines()[-2:]
            assert tail == [
                f'reproduce: nox -s "logitsmatch-{outcome.id}"',
                f"re-record: nox -s record -- {outcome.case} --platform {outcome.platform}",
            ]


def test_failure_message_has_position_values_and_near_tie(outcomes):
    message = outcomes[1].message()
    assert "request '0' generated_tokens: differ at index 1: golden 12 vs current 14" in message
    assert "near-tie (current top-1/top-2 gap 0.01, golden top-1/top-2 gap 0.01)" in message
    assert "logprob[3] (generated token 1)" in message


def test_junit_parses_with_one_testcase_per_target_and_right_counts(outcomes):
    root = ET.fromstring(render_junit(outcomes))
    suite = root.find("testsuite")
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "5",
        "failures": "1",
        "errors": "1",
        "skipped": "2",
    }
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "ref@cpu",
        "mixed@cpu",
        "known@cpu",
        "ref@dgx_h100",
        "new@cpu",
    ]
    assert cases[1].find("failure").text.endswith("--platform cpu")
    assert cases[3].find("skipped").get("message") == "needs 8 GPUs, found 0"
    assert cases[2].find("skipped").get("message").startswith("expected failure (issue 12)")
    assert "no golden for this platform" in cases[4].find("error").get("message")
    assert cases[0].find("*") is None and cases[1].get("time") == "3.500"


def test_markdown_has_the_failing_case_and_both_commands(outcomes):
    md = render_markdown(outcomes)
    assert md.startswith("## logitsmatch: 1 passed, 1 failed, 1 error, 1 skipped, 1 xfailed")
    assert "| `mixed@cpu` | ❌ failed |" in md and "| `ref@dgx_h100` | ⏭️ skipped |" in md
    assert "### ❌ failed: `mixed@cpu`" in md
    assert 'nox -s "logitsmatch-mixed@cpu"' in md
    assert "nox -s record -- mixed --platform cpu" in md
    assert "nox -s record -- new --platform cpu" in md


def test_step_summary_is_appended_only_when_set(tmp_path):
    summary = tmp_path / "step.md"
    summary.write_text("earlier step\n")
    assert write_step_summary("## ours\n", {"GITHUB_STEP_SUMMARY": str(summary)}) == summary
    assert summary.read_text() == "earlier step\n## ours\n"
    assert write_step_summary("## ours\n", {}) is None


def test_png_is_written_for_a_failing_case(tmp_path):
    verdict = compare(GOLDEN, broken(), case="mixed", platform="cpu")
    path = plot_verdict(verdict, tmp_path / "plots" / "mixed@cpu.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert plot_verdict(compare(GOLDEN, GOLDEN), tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_the_plot_marks_where_the_prompt_ends_and_the_tokens_diverge():
    fig = draw_verdict(compare(GOLDEN, broken(), case="mixed", platform="cpu"))
    assert fig is not None
    lines = {line.get_label(): line.get_xdata()[0] for line in fig.axes[0].get_lines()}
    # request 0: 5 logprobs for 3 generated tokens, so 2 score the prompt
    assert lines["request 0: prompt ends"] == 1.5
    assert lines["request 0: first diverging token"] == 2 + 1


def test_write_reports_writes_every_file_and_prints_worst_positions(tmp_path, outcomes):
    console = Console(record=True, width=200)
    summary = tmp_path / "gh.md"
    files = write_reports(
        outcomes, tmp_path / "out", console=console, environ={"GITHUB_STEP_SUMMARY": str(summary)}
    )
    assert files.junit.exists() and files.markdown.exists()
    assert [p.name for p in files.plots] == ["mixed@cpu.png"]
    assert summary.read_text() == files.markdown.read_text()
    text = console.export_text()
    assert "mixed@cpu: worst positions (abs tolerance 0.001)" in text
    assert "logprob[3] (generated token 1)" in text
    assert 'reproduce: nox -s "logitsmatch-mixed@cpu"' in text


def test_a_passing_report_leaves_no_plot_of_an_earlier_failure(tmp_path, outcomes):
    out = tmp_path / "out"
    quiet = Console(file=io.StringIO())
    assert [p.name for p in write_reports(outcomes, out, console=quiet).plots] == ["mixed@cpu.png"]
    passed = [outcome_from_verdict(compare(GOLDEN, GOLDEN, case="mixed", platform="cpu"))]
    assert write_reports(passed, out, console=quiet).plots == ()
    assert list((out / "plots").glob("*")) == []
    assert (out / "summary.md").read_text().startswith("## logitsmatch: 1 passed")
