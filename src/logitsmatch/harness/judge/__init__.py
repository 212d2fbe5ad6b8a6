"""Where a number is judged: compare a run with its golden under the case's tolerances, classify
the first diverging token, score the golden continuation (teacher forcing); plain Python."""

from logitsmatch.harness.judge.compare import compare, request_ids
from logitsmatch.harness.judge.tolerances import Tolerances
from logitsmatch.harness.judge.verdict import Verdict

__all__ = ["Tolerances", "Verdict", "compare", "request_ids"]
