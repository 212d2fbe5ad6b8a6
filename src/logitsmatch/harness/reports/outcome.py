"""How one case target ended (passed, failed, skipped, ...), whatever the reason; for reports."""

from __future__ import annotations

from dataclasses import dataclass

from logitsmatch.harness.cases.fields import Expected
from logitsmatch.harness.judge.verdict import MetricResult, Verdict
from logitsmatch.harness.reports.commands import command_footer
from logitsmatch.harness.reports.text import verdict_lines
from logitsmatch.harness.text_enum import TextEnum


class OutcomeStatus(TextEnum):
    """How a case target ended (the word reports, JUnit and the run log show)."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    XFAILED = "xfailed"
    # The golden was recorded with another model or tokenizer than this run uses: nothing
    # was compared. Not a pass (the job fails) and not a token failure.
    NOT_COMPARABLE = "not_comparable"


@dataclass(frozen=True)
class TargetOutcome:
    """The end of one case × platform: ``status`` with a one-line ``reason``, and the verdict.

    ``failed``, ``error`` (could not compare: no golden, engine crashed, deadline) and
    ``not_comparable`` (the golden is another model's) fail the job; ``skipped`` (too few
    devices, not recorded yet) and ``xfailed`` do not, but are shown with their reason.
    ``environment``: how this machine differs from the one that recorded the golden
    (``torch 2.11.0 -> 2.13.0``), filled in for a failed target. ``notes``: what the run log
    says about how the case ran here (the model, a stand-in, flags that are no-ops here).
    ``source``: the case file, so the reproduce and re-record lines work for a case given by
    path (``reports.commands``).
    """

    case: str
    platform: str
    status: OutcomeStatus
    reason: str = ""
    verdict: Verdict | None = None
    duration_s: float = 0.0
    environment: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    source: str = ""  # the case file (names it in the commands when it is not the project's)

    def __post_init__(self) -> None:
        if self.status not in OutcomeStatus.words():
            statuses = ", ".join(OutcomeStatus.words())
            raise ValueError(f"status must be one of {statuses}, got {self.status!r}")
        object.__setattr__(self, "status", OutcomeStatus(self.status))
        if self.status != OutcomeStatus.PASSED and not self.reason:
            raise ValueError(f"{self.id}: a {self.status} outcome needs a reason")

    @property
    def id(self) -> str:
        return f"{self.case}@{self.platform}"

    @property
    def ok(self) -> bool:
        """Whether the job may still pass with this outcome."""
        return self.status not in (
            OutcomeStatus.FAILED,
            OutcomeStatus.ERROR,
            OutcomeStatus.NOT_COMPARABLE,
        )

    def message(self) -> str:
        """The full failure text, ending with the reproduce and re-record commands."""
        if self.verdict is not None and not self.verdict.passed:
            n = len(self.verdict.failures())
            lines = [f"{self.status.upper()} {self.id}: {n} failed check{'s' * (n > 1)}"]
            lines += verdict_lines(self.verdict)
        else:
            lines = [f"{self.status.upper()} {self.id}: {self.reason}"]
        if self.environment:
            lines.append("changed since the golden was recorded: " + ", ".join(self.environment))
        return "\n".join(lines) + "\n" + command_footer(self.case, self.platform, self.source)


def outcome_from_verdict(
    verdict: Verdict,
    *,
    expected: Expected = Expected.PASS,
    reason: str = "",
    duration_s: float = 0.0,
) -> TargetOutcome:
    """Turn a comparison into an outcome, honouring the case's ``expected`` for the platform."""
    case, platform = verdict.case, verdict.platform
    failures = verdict.failures()
    summary = "" if verdict.passed else _summary(failures)
    if expected == Expected.XFAIL:
        if verdict.passed:
            return TargetOutcome(
                case,
                platform,
                OutcomeStatus.FAILED,
                f"passed but is marked xfail ({reason}): remove the mark",
                verdict,
                duration_s,
            )
        return TargetOutcome(
            case,
            platform,
            OutcomeStatus.XFAILED,
            f"expected failure ({reason}): {summary}",
            verdict,
            duration_s,
        )
    if verdict.passed:
        return TargetOutcome(case, platform, OutcomeStatus.PASSED, "", verdict, duration_s)
    return TargetOutcome(case, platform, OutcomeStatus.FAILED, summary, verdict, duration_s)


def outcome_without_golden(
    case: str,
    platform: str,
    golden_path: str,
    *,
    expected: Expected = Expected.PASS,
    reason: str = "",
) -> TargetOutcome:
    """No golden for this platform: skipped when the case says not_recorded, else an error."""
    if expected == Expected.NOT_RECORDED:
        return TargetOutcome(
            case,
            platform,
            OutcomeStatus.SKIPPED,
            f"no golden for this platform yet (not_recorded: {reason})",
        )
    return TargetOutcome(
        case,
        platform,
        OutcomeStatus.ERROR,
        f"no golden for this platform: {golden_path} does not exist; record it "
        "or mark the platform not_recorded in the case",
    )


def _summary(failures: list[tuple[str | None, MetricResult]]) -> str:
    request, metric = failures[0]
    where = f"request {request!r} " if request is not None else ""
    more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
    return f"{where}{metric.metric}: {metric.message}{more}"
