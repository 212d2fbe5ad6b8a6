"""Reports: how each case target ended (``TargetOutcome``) and its renderings: the terminal
table, markdown summary, JUnit XML and plots. A report renders a verdict; it never judges one.

Importable without rich or matplotlib (each is imported when something is drawn), so that
``logitsmatch.ci`` writes JUnit and markdown on a bare python.
"""

from logitsmatch.harness.reports.outcome import (
    OutcomeStatus,
    TargetOutcome,
    outcome_from_verdict,
    outcome_without_golden,
)
from logitsmatch.harness.reports.terminal import print_report
from logitsmatch.harness.reports.write import write_reports

__all__ = [
    "OutcomeStatus",
    "TargetOutcome",
    "outcome_from_verdict",
    "outcome_without_golden",
    "print_report",
    "write_reports",
]
