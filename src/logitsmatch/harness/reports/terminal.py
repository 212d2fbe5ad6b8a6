"""The terminal report: one row per case target, then the worst positions of each failure.

rich is imported when a report is printed: ``logitsmatch.ci.report`` writes JUnit and markdown
through this package on a python without rich.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from logitsmatch.harness.reports.outcome import OutcomeStatus, TargetOutcome

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

_STYLE = {
    OutcomeStatus.PASSED: "green",
    OutcomeStatus.FAILED: "bold red",
    OutcomeStatus.ERROR: "bold red",
    OutcomeStatus.XFAILED: "yellow",
    OutcomeStatus.NOT_COMPARABLE: "bold magenta",
}


# why: rich assumes 80 columns when not on a terminal; CI logs have room for the table.
LOG_WIDTH = 160


def report_console() -> Console:
    """The console every command prints its report on: the terminal's width, else LOG_WIDTH."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else LOG_WIDTH)


def print_report(outcomes: Sequence[TargetOutcome], console: Console | None = None) -> None:
    """Print the summary table, the worst positions of each failure and its message."""
    console = console or report_console()
    console.print(summary_table(outcomes))
    for outcome in outcomes:
        for note in outcome.notes:
            console.print(f"{outcome.id}: {note}", markup=False, highlight=False, soft_wrap=True)
    for outcome in outcomes:
        if outcome.ok:
            continue
        table = worst_table(outcome)
        if table is not None:
            console.print(table)
        console.print(outcome.message(), markup=False, highlight=False, soft_wrap=True)


def summary_table(outcomes: Sequence[TargetOutcome]) -> Table:
    """case@platform | result | requests passed | max |Δ logprob| | time | detail."""
    from rich.table import Table

    table = Table(title="logitsmatch", show_lines=False)
    for column in ("target", "result", "requests", "max |Δ logprob|", "time", "detail"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        v = o.verdict
        requests = f"{sum(r.passed for r in v.requests)}/{len(v.requests)}" if v else "-"
        biggest = (
            max((max(r.logprob_deltas, default=0.0) for r in v.requests), default=0.0)
            if v
            else None
        )
        table.add_row(
            o.id,
            f"[{_STYLE.get(o.status, 'dim')}]{o.status}[/]",
            requests,
            "-" if biggest is None else f"{biggest:.3g}",
            f"{o.duration_s:.1f}s",
            o.reason or "",
        )
    return table


def worst_table(outcome: TargetOutcome) -> Table | None:
    """The positions whose logprob moved most, over the failed requests of the outcome."""
    if outcome.verdict is None:
        return None
    rows = sorted(
        ((r.request_id, w) for r in outcome.verdict.requests if not r.passed for w in r.worst),
        key=lambda row: -row[1].delta,
    )
    if not rows:
        return None
    tol = outcome.verdict.tolerances.logprobs_abs
    from rich.table import Table

    table = Table(title=f"{outcome.id}: worst positions (abs tolerance {tol:g})")
    for column in ("request", "position", "golden", "current", "|Δ|"):
        table.add_column(column)
    for rid, w in rows[:10]:
        style = "red" if not w.delta <= tol else ""
        table.add_row(
            rid,
            w.label,
            f"{w.golden:.6f}",
            f"{w.current:.6f}",
            f"[{style}]{w.delta:.3g}[/]" if style else f"{w.delta:.3g}",
        )
    return table
