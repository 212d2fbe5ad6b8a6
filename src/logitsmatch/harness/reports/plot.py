"""A PNG per failing case: |Δ logprob| by position, with the tolerance line, where each prompt
ends and where its tokens first diverge.

matplotlib is an optional dependency (extras ``plot`` and ``test``); it is imported when a plot
is drawn, with the Agg canvas, so no display or global pyplot state is involved.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from logitsmatch.harness.judge.verdict import Verdict
from logitsmatch.harness.reports.commands import repro_command

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_verdict(verdict: Verdict, path: str | Path, reproduce: str = "") -> Path | None:
    """Draw the failed requests' |Δ logprob| (teacher-forced drift where measured, else the
    free-running difference) against position into a PNG at ``path``; None (and no file) when
    no failed request has logprobs. ``reproduce``: the command in the title (default: the
    target's nox session)."""
    fig = draw_verdict(verdict, reproduce)
    if fig is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def draw_verdict(verdict: Verdict, reproduce: str = "") -> Figure | None:
    """The figure ``plot_verdict`` saves (None when there is nothing to draw)."""
    series = [
        (r, r.drift if r.drift else r.logprob_deltas)
        for r in verdict.requests
        if not r.passed and (r.drift or r.logprob_deltas)
    ]
    if not series:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tol = verdict.tolerances.logprobs_abs
    fig = Figure(figsize=(10, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    finite_max = max((d for _, ys in series for d in ys if math.isfinite(d)), default=tol)
    ceiling = max(finite_max, tol) * 10
    for request, ys in series:
        kind = "teacher-forced" if request.drift else "free-running"
        xs = range(len(ys))
        (line,) = ax.plot(
            xs,
            [d if math.isfinite(d) else math.nan for d in ys],
            lw=1,
            label=f"request {request.request_id} ({kind})",
        )
        bad = [i for i, d in enumerate(ys) if not math.isfinite(d)]
        if bad:
            ax.scatter(
                bad,
                [ceiling] * len(bad),
                marker="x",
                color=line.get_color(),
                label=f"request {request.request_id}: NaN/inf",
            )
        if request.n_prompt_logprobs:
            # why: left of this line the positions score the prompt, right of it generation
            ax.axvline(
                request.n_prompt_logprobs - 0.5,
                ls="-",
                lw=0.8,
                color=line.get_color(),
                alpha=0.5,
                label=f"request {request.request_id}: prompt ends",
            )
        if request.divergence is not None and request.n_prompt_logprobs is not None:
            ax.axvline(
                request.n_prompt_logprobs + request.divergence.position,
                ls=":",
                color=line.get_color(),
                label=f"request {request.request_id}: first diverging token",
            )
    ax.axhline(tol, color="red", ls="--", label=f"tolerance {tol:g}")
    ax.set_yscale("symlog", linthresh=min(tol, 1e-6))
    ax.set_ylim(0, ceiling * 3)
    ax.set_xlabel("logprob position (prompt tokens, then generated tokens)")
    ax.set_ylabel("|Δ logprob|")
    ax.set_title(
        f"{verdict.target_id}\nreproduce: "
        f"{reproduce or repro_command(verdict.case, verdict.platform)}",
        fontsize=8,
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig
