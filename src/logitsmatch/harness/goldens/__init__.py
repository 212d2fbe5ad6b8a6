"""Goldens: reading and writing output JSON files (a run's or a golden's) with clear errors,
their schema check, the diff a re-record shows, and the provenance a golden carries.

The ``record`` and ``compare`` commands live here too (``goldens.record``, ``goldens.compare``);
they are not imported by this package's face, which the run package uses.
"""

from logitsmatch.harness.goldens.diff import diff_goldens
from logitsmatch.harness.goldens.io import GoldenError, GoldenRefused, load_output, write_golden
from logitsmatch.harness.goldens.provenance import (
    collect_provenance,
    current_environment,
    environment_changes,
)

__all__ = [
    "GoldenError",
    "GoldenRefused",
    "collect_provenance",
    "current_environment",
    "diff_goldens",
    "environment_changes",
    "load_output",
    "write_golden",
]
