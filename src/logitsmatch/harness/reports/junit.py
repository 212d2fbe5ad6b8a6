"""JUnit XML for CI test tabs: one testcase per case × platform."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from logitsmatch.harness.reports.outcome import OutcomeStatus, TargetOutcome

# Nothing was compared: JUnit's <error>, not a <failure> of the values.
_ERRORS = (OutcomeStatus.ERROR, OutcomeStatus.NOT_COMPARABLE)


def render_junit(outcomes: Sequence[TargetOutcome], suite: str = "logitsmatch") -> str:
    """The XML text; skipped and xfailed targets are <skipped> with their reason."""
    counts = {
        "tests": len(outcomes),
        "failures": sum(o.status == OutcomeStatus.FAILED for o in outcomes),
        "errors": sum(o.status in _ERRORS for o in outcomes),
        "skipped": sum(
            o.status in (OutcomeStatus.SKIPPED, OutcomeStatus.XFAILED) for o in outcomes
        ),
    }
    total = sum(o.duration_s for o in outcomes)
    suites = ET.Element("testsuites", {k: str(v) for k, v in counts.items()}, time=f"{total:.3f}")
    node = ET.SubElement(
        suites, "testsuite", {k: str(v) for k, v in counts.items()}, name=suite, time=f"{total:.3f}"
    )
    for o in outcomes:
        case = ET.SubElement(
            node,
            "testcase",
            classname=f"{suite}.{o.platform}",
            name=o.id,
            time=f"{o.duration_s:.3f}",
        )
        if o.status == OutcomeStatus.FAILED or o.status in _ERRORS:
            tag = "failure" if o.status == OutcomeStatus.FAILED else "error"
            ET.SubElement(case, tag, message=o.reason.splitlines()[0][:500]).text = o.message()
        elif o.status in (OutcomeStatus.SKIPPED, OutcomeStatus.XFAILED):
            ET.SubElement(case, "skipped", message=o.reason[:500])
        if o.notes:
            ET.SubElement(case, "system-out").text = "\n".join(o.notes)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(path: str | Path, outcomes: Sequence[TargetOutcome]) -> Path:
    """Write ``render_junit`` to ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_junit(outcomes), encoding="utf-8")
    return path
