"""JUnit XML for CI test tabs: one testcase per case × platform."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from logitsmatch.harness.outcome import ERROR, FAILED, SKIPPED, XFAILED, TargetOutcome


def render_junit(outcomes: Sequence[TargetOutcome], suite: str = "logitsmatch") -> str:
    """The XML text; skipped and xfailed targets are <skipped> with their reason."""
    counts = {
        "tests": len(outcomes),
        "failures": sum(o.status == FAILED for o in outcomes),
        "errors": sum(o.status == ERROR for o in outcomes),
        "skipped": sum(o.status in (SKIPPED, XFAILED) for o in outcomes),
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
        if o.status in (FAILED, ERROR):
            tag = "failure" if o.status == FAILED else "error"
            ET.SubElement(case, tag, message=o.reason.splitlines()[0][:500]).text = o.message()
        elif o.status in (SKIPPED, XFAILED):
            ET.SubElement(case, "skipped", message=o.reason[:500])
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(path: str | Path, outcomes: Sequence[TargetOutcome]) -> Path:
    """Write ``render_junit`` to ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_junit(outcomes), encoding="utf-8")
    return path
