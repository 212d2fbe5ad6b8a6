"""Write the stand-in for ShareGPT's prompts that Megatron-LM's folders read from
``${DATA_PATH}/text/sharegpt-vicuna/filtered/processed.jsonl`` (not shipped: its licence and
size). 256 synthetic, seeded, chat-style requests of varied length, one JSON object a line::

    python tools/make_prompt_stand_in.py \
        > src/logitsmatch/harness/cases/data/sharegpt_stand_in.jsonl
"""

from __future__ import annotations

import json
import random

TASKS = [
    "Explain {topic} to a student who has never heard of it",
    "Write a short story in which {topic} matters",
    "List the pros and cons of {topic}",
    "Summarise what an engineer should know about {topic}",
    "Draft an email to a colleague about {topic}",
    "Give three questions an interviewer might ask about {topic}, with answers",
    "Translate this idea into plain words: {topic}",
    "Write a Python function related to {topic} and explain it",
]
TOPICS = [
    "the water cycle",
    "binary search",
    "compound interest",
    "the French revolution",
    "photosynthesis",
    "TCP congestion control",
    "the history of the bicycle",
    "vaccines",
    "sorting algorithms",
    "the Roman empire",
    "black holes",
    "supply and demand",
    "garbage collection",
    "plate tectonics",
    "the printing press",
    "neural networks",
]
DETAILS = [
    "Keep it under two hundred words.",
    "Use a friendly tone.",
    "Include one concrete example.",
    "Avoid jargon where you can.",
    "End with a one-line summary.",
    "Mention a common misconception.",
]


def main() -> None:
    rng = random.Random(2026)
    for _ in range(256):
        text = rng.choice(TASKS).format(topic=rng.choice(TOPICS)) + "."
        text += "".join(" " + d for d in rng.sample(DETAILS, rng.randint(0, 4)))
        print(json.dumps({"text": text}))


if __name__ == "__main__":
    main()
