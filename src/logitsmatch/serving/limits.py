"""Size limits every decoder enforces, so no peer can make another buffer unbounded input."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what one message may carry; all must be positive ints.

    ``max_frame_bytes`` bounds the encoded frame; it must hold a reply, which echoes the prompt
    and carries a logprob per token, so it is several times ``max_prompt_bytes``.
    """

    max_frame_bytes: int = 8 << 20
    max_prompt_bytes: int = 1 << 20
    max_prompt_tokens: int = 131_072
    max_tokens_to_generate: int = 65_536
    max_id_chars: int = 128
    max_name_chars: int = 64
    max_text_chars: int = 4096
    max_stop_strings: int = 16
    # Per peer, so that no one peer can make the coordinator hold unbounded state:
    max_requests_per_client: int = 4096  # in flight at once; a submit past it is refused
    max_queued_per_peer: int = 100_000  # messages waiting for a peer that does not read; past
    # it the peer counts as gone (ZMQ's send high-water mark)
    max_inbound_per_peer: int = 100  # frames read ahead from one peer; past it ZMQ stops reading
    # its connection until the coordinator catches up (ZMQ's receive high-water mark)
    max_waiting_bytes_per_client: int = 64 << 20  # prompts waiting for a replica (fair_queue)
    max_waiting_bytes: int = 512 << 20  # the same, all clients together

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{f.name} must be a positive int, got {value!r}")
        if self.max_frame_bytes < 2 * self.max_prompt_bytes:
            raise ValueError(
                f"Limits.max_frame_bytes ({self.max_frame_bytes}) must be at least twice "
                f"max_prompt_bytes ({self.max_prompt_bytes}): a reply echoes the prompt"
            )


DEFAULT_LIMITS = Limits()
