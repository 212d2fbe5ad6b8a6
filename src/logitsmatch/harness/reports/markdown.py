"""The markdown summary of a run (a CI job's step summary, a PR comment)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from logitsmatch.harness.reports.outcome import OutcomeStatus, TargetOutcome

_MARK = {
    OutcomeStatus.PASSED: "✅ passed",
    OutcomeStatus.FAILED: "❌ failed",
    OutcomeStatus.ERROR: "❌ error",
    OutcomeStatus.SKIPPED: "⏭️ skipped",
    OutcomeStatus.XFAILED: "⚠️ xfailed",
    OutcomeStatus.NOT_COMPARABLE: "🚫 not comparable",
}


def render_markdown(outcomes: Sequence[TargetOutcome]) -> str:
    """A title with the counts, a table of every target, then each failure in full."""
    counts = {s: sum(o.status == s for o in outcomes) for s in _MARK}
    title = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no cases"
    lines = [
        f"## logitsmatch: {title}",
        "",
        "| target | result | time | detail |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        lines.append(f"| `{o.id}` | {_MARK[o.status]} | {o.duration_s:.1f}s | {_cell(o.reason)} |")
    for o in outcomes:
        if not o.ok:
            lines += ["", f"### {_MARK[o.status]}: `{o.id}`", "", "```text", o.message(), "```"]
    noted = [o for o in outcomes if o.notes]
    if noted:
        lines += ["", "### How the targets ran here", ""]
        for o in noted:
            lines += [f"- `{o.id}`:", *(f"  - {_cell(note)}" for note in o.notes)]
    return "\n".join(lines) + "\n"


def write_step_summary(markdown: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """Append to ``$GITHUB_STEP_SUMMARY`` when it is set; return the file written, if any."""
    target = (os.environ if environ is None else environ).get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as f:
        f.write(markdown)
    return path


def _cell(text: str) -> str:
    # why: a '|' or newline would break the table row.
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 200 else text[:197] + "..."
