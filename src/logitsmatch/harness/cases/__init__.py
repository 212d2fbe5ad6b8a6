"""Cases: the case schema and its YAML loading, the case lookup, the platform table, and how a
case becomes the builtin engine's command line (``flags``).

Plain Python plus pyyaml (imported only to read a case file): the noxfile lists the case
targets, and ``logitsmatch.ci`` reads the platform table, without torch.
"""

from logitsmatch.harness.cases.fields import CaseError, Driver, Expected
from logitsmatch.harness.cases.lookup import DEFAULT_CASES_DIR, find_case
from logitsmatch.harness.cases.schema import Case, CaseTarget, case_paths, load_all, load_case

__all__ = [
    "DEFAULT_CASES_DIR",
    "Case",
    "CaseError",
    "CaseTarget",
    "Driver",
    "Expected",
    "case_paths",
    "find_case",
    "load_all",
    "load_case",
]
