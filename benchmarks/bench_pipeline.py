"""Pipeline cost on this machine: pp1 vs pp8 for the seed prompt and 30 greedy tokens (SmolLM2).

Reports, per layout: wall time from command start to output file; decode time per step
(from the engine's own request latency with 31 vs 1 generated tokens, so startup is excluded);
and how long the ranks take to import, load their shards and be ready (the slowest rank).
Usage: ``python benchmarks/bench_pipeline.py [--batch-invariant]``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEED_PROMPT = (
    "Time travel to 2008, and go to a bar or a club or one of the myriad disco-basements on the "
    "Lower East Side that does not quite know which of those it is. Dance awkwardly in a room "
    "full of other glittered-up nerds, and wait for something to happen, buoyed on the feeling "
    "that this is the big swollen heart of life, that this is New York like the movies."
)
READY = re.compile(r"ready in ([0-9.]+) s")


def run(pp: int, tokens: int, extra: list[str]) -> tuple[float, float, float]:
    """(wall seconds, request latency seconds, slowest rank's time to ready)."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-pp{pp}-"))
    out = folder / "out.json"
    cmd = [
        sys.executable,
        "-m",
        "logitsmatch.cli",
        "generate",
        "--model",
        "smollm2-135m",
        "--prompts",
        SEED_PROMPT,
        "--num-tokens-to-generate",
        str(tokens),
        "--termination-id",
        "-1",
        "--output-path",
        str(out),
        "--run-dir",
        str(folder),
        "--pipeline-model-parallel-size",
        str(pp),
        *extra,
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    latency = json.loads(out.read_text())["0"]["latency"]
    logs = [proc.stderr] + [p.read_text() for p in folder.glob("rank-logs/*/*/*/stderr.log")]
    ready = max(float(m) for text in logs for m in READY.findall(text))
    return wall, latency, ready


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch-invariant", action="store_true")
    args = p.parse_args()
    extra = ["--batch-invariant"] if args.batch_invariant else []
    rows = {}
    for pp in (1, 8):
        wall, lat31, ready = run(pp, 31, extra)
        _, lat1, _ = run(pp, 1, extra)
        rows[pp] = (wall, (lat31 - lat1) / 30, ready)
    print("layout  wall(s)  decode ms/step  ranks ready(s)")
    for pp, (wall, step, ready) in rows.items():
        print(f"pp{pp:<5} {wall:8.2f} {step * 1e3:15.1f} {ready:15.2f}")
    print(
        f"pp8/pp1 decode step: {rows[8][1] / rows[1][1]:.2f}x; wall: {rows[8][0] / rows[1][0]:.2f}x"
    )


if __name__ == "__main__":
    main()
