"""`logitsmatch generate --zmq` (coordinator + torchrun ranks) equals the in-process engine."""

import json
import random
import subprocess
import sys

import psutil
import pytest

WORDS = [
    "time",
    "travel",
    "bar",
    "club",
    "dance",
    "room",
    "nerds",
    "heart",
    "life",
    "movies",
    "city",
    "night",
    "music",
]


def prompts(count: int) -> list[str]:
    rng = random.Random(7)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 25))) for _ in range(count)]


def generate(tmp_path, name, texts, *flags):
    out = tmp_path / f"{name}.json"
    cmd = [
        sys.executable,
        "-m",
        "logitsmatch.cli",
        "generate",
        "--model",
        "smollm2-135m",
        "--prompts",
        *texts,
        "--num-tokens-to-generate",
        "4",
        "--return-log-probs",
        "--termination-id",
        "-1",
        "--batch-invariant",
        "--output-path",
        str(out),
        "--run-dir",
        str(tmp_path / name),
        *flags,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize(
    ("count", "layout"),
    [(1, "pp8"), (32, "pp8"), (32, "dp2")],
)
def test_zmq_run_equals_in_process_engine(tmp_path, count, layout):
    flags = {"pp8": ["--pipeline-model-parallel-size", "8"], "dp2": ["--data-parallel-size", "2"]}
    texts = prompts(count)
    reference = generate(tmp_path, "in-process", texts)
    served = generate(
        tmp_path,
        "zmq",
        texts,
        "--zmq",
        "--no-stagger-lengths",
        "--incoming-requests-per-step",
        "8",
        *flags[layout],
    )
    assert len(served["throughput"]) == count
    for key in map(str, range(count)):
        assert served[key]["generated_tokens"] == reference[key]["generated_tokens"]
        assert served[key]["input_prompt"] == texts[int(key)]
        diffs = [
            abs(a - b)
            for a, b in zip(served[key]["logprobs"], reference[key]["logprobs"], strict=True)
        ]
        assert max(diffs) <= 1e-5
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(tmp_path / "zmq") in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []


def test_zmq_run_names_a_rank_that_dies_at_startup(tmp_path):
    out = tmp_path / "o.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "logitsmatch.cli",
            "generate",
            "--zmq",
            "--model",
            "tiny",
            "--prompts",
            "x",
            "--output-path",
            str(out),
            "--run-dir",
            str(tmp_path / "run"),
            "--data-parallel-size",
            "2",
            "--device",
            "cuda",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "failed first" in proc.stderr or "CUDA is not available" in proc.stderr
    assert not out.exists()
