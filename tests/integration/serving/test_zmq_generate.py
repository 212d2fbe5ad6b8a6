"""`logitsmatch generate --zmq` (coordinator + engine ranks) equals the in-process engine:
the same record fields with equal values, on every layout the shipped cases use."""

import json
import random
import subprocess
import sys

import psutil
import pytest

from logitsmatch.record import REQUEST_FIELDS

# Everything but timings must be equal between the two paths on the same layout (and with
# --batch-invariant, whatever requests share a step).
CONTENT_FIELDS = [spec.name for spec in REQUEST_FIELDS if not spec.timing]
LAYOUTS = {
    "pp8": ["--pipeline-model-parallel-size", "8"],
    "dp2": ["--data-parallel-size", "2"],
    "dp8": ["--data-parallel-size", "8"],
    "tp8": ["--tensor-model-parallel-size", "8"],
    "tp2pp2dp2": [
        "--tensor-model-parallel-size",
        "2",
        "--pipeline-model-parallel-size",
        "2",
        "--data-parallel-size",
        "2",
    ],
}

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


def generate(tmp_path, name, model, texts, *flags):
    out = tmp_path / f"{name}.json"
    cmd = [
        sys.executable,
        "-m",
        "logitsmatch.cli",
        "generate",
        "--model",
        model,
        "--prompts",
        *texts,
        "--num-tokens-to-generate",
        "4",
        "--return-log-probs",
        "--termination-id",
        "-1",
        "--batch-invariant",
        "--top-n-logprobs",
        "3",
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
    ("model", "count", "layout"),
    [
        ("smollm2-135m", 1, "pp8"),  # the reference case's layout
        ("smollm2-135m", 32, "pp8"),
        ("smollm2-135m", 32, "dp2"),
        ("tiny", 8, "dp8"),
        ("tiny", 8, "tp8"),  # tiny: SmolLM2's 9 heads do not split 8 or 2 ways
        ("tiny", 8, "tp2pp2dp2"),
    ],
)
def test_zmq_run_equals_in_process_engine(tmp_path, model, count, layout):
    texts = prompts(count)
    reference = generate(tmp_path, "in-process", model, texts, *LAYOUTS[layout])
    served = generate(
        tmp_path,
        "zmq",
        model,
        texts,
        "--zmq",
        "--no-stagger-lengths",
        "--incoming-requests-per-step",
        "8",
        *LAYOUTS[layout],
    )
    ids = [*map(str, range(count))]
    assert list(served) == [*ids, "throughput", "lifetime_prefill_token_count"]
    # only the in-process engine writes its memory (the engines do not tell the driver)
    assert list(reference) == [*served, "mem-max-allocated-bytes"]
    # the driver sums the records' prefill counts: every prompt prefilled once, as in-process
    assert served["lifetime_prefill_token_count"] == reference["lifetime_prefill_token_count"]
    assert len(served["throughput"]) == len(reference["throughput"]) == 1  # one figure a run
    for key in map(str, range(count)):
        assert set(served[key]) == set(reference[key]), f"request {key}: fields differ"
        assert "top_n_logprobs" in served[key]
        assert served[key]["input_prompt"] == texts[int(key)]
        for field in CONTENT_FIELDS:
            assert served[key].get(field) == reference[key].get(field), f"request {key}: {field}"
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
