"""Write every report of a run: terminal table, markdown (+ step summary), JUnit XML, plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from logitsmatch.harness.reports.commands import repro_command
from logitsmatch.harness.reports.junit import write_junit
from logitsmatch.harness.reports.markdown import render_markdown, write_step_summary
from logitsmatch.harness.reports.outcome import TargetOutcome
from logitsmatch.harness.reports.plot import plot_verdict
from logitsmatch.harness.reports.terminal import print_report, report_console

if TYPE_CHECKING:
    from rich.console import Console


@dataclass(frozen=True)
class ReportFiles:
    """What ``write_reports`` wrote; ``notes`` says what it could not write and why."""

    junit: Path
    markdown: Path
    plots: tuple[Path, ...]
    step_summary: Path | None
    notes: tuple[str, ...] = ()


def write_reports(
    outcomes: Sequence[TargetOutcome],
    out_dir: str | Path,
    *,
    console: Console | None = None,
    environ: Mapping[str, str] | None = None,
) -> ReportFiles:
    """Print the terminal report and write junit.xml, summary.md and plots/<target>.png.

    The plots of an earlier report in ``out_dir`` go first: a passing run must not leave the
    last failure's plot beside a summary that says it passed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (out_dir / "plots").glob("*.png"):
        stale.unlink()
    console = console or report_console()
    print_report(outcomes, console)
    markdown = render_markdown(outcomes)
    md_path = out_dir / "summary.md"
    md_path.write_text(markdown, encoding="utf-8")
    plots, notes = [], []
    for o in outcomes:
        if o.ok or o.verdict is None:
            continue
        try:
            reproduce = repro_command(o.case, o.platform, o.source)
            plot = plot_verdict(o.verdict, out_dir / "plots" / f"{o.id}.png", reproduce)
        except ImportError:
            notes.append("no plots: matplotlib is not installed (pip install 'logitsmatch[plot]')")
            break
        if plot is not None:
            plots.append(plot)
    for note in notes:
        console.print(note, markup=False)
    return ReportFiles(
        write_junit(out_dir / "junit.xml", outcomes),
        md_path,
        tuple(plots),
        write_step_summary(markdown, environ),
        tuple(notes),
    )
