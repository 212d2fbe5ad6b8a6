"""Hypothesis strategies and helpers shared by the coordinator and worker fuzz tests."""

from __future__ import annotations

import msgpack
from hypothesis import strategies as st

from logitsmatch.serving.errors import ProtocolError
from logitsmatch.serving.limits import Limits
from logitsmatch.serving.protocol import KINDS, decode

LIMITS = Limits(max_frame_bytes=16384, max_prompt_bytes=1024)


def undecodable(frame: bytes) -> bool:
    try:
        decode(frame, LIMITS)
    except ProtocolError:
        return True
    return False


def packed(body: object) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8)
)
TREE = st.recursive(
    LEAF,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=8,
)
SUBMIT_BODY = {
    "kind": "submit",
    "request_id": "bad",
    "prompt": "p",
    "sampling": {"num_tokens_to_generate": 2},
}


# Bad frames every peer (coordinator or engine) must answer or drop without dying.
garbage = st.binary(max_size=64).filter(undecodable).map(lambda b: [b])
frame_counts = st.lists(st.binary(max_size=16), min_size=2, max_size=4)
wrong_types = st.builds(
    lambda key, value: [packed({**SUBMIT_BODY, key: value})],
    st.sampled_from(["request_id", "prompt", "sampling", "stream", "colour"]),
    TREE,
).filter(lambda frames: undecodable(frames[0]))
unknown_kinds = (
    st.text(max_size=12).filter(lambda k: k not in KINDS).map(lambda k: [packed({"kind": k})])
)
oversized = st.integers(LIMITS.max_prompt_bytes + 1, 4 * LIMITS.max_prompt_bytes).map(
    lambda n: [packed({**SUBMIT_BODY, "prompt": "x" * n})]
)
