"""Hand the entry rank's events to every rank of a replica with torch.distributed.

Each loop iteration the entry rank broadcasts the msgpack-encoded event list over the replica
group: first its length as an int64 tensor, then (if not empty) the bytes as a uint8 tensor.
Tensors live on the GPU when the group's backend is NCCL, on the CPU otherwise (gloo).
"""

from __future__ import annotations

from typing import Any

import msgpack
import torch
import torch.distributed as dist

from logitsmatch.serving.worker_state import Event


def _device(group: Any) -> torch.device:
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_events(events: list[Event], src: int, group: Any) -> list[Event]:
    """On ``src`` return ``events``; on the other ranks return a copy received from it."""
    device = _device(group)
    is_src = dist.get_rank() == src
    payload = msgpack.packb(events, use_bin_type=True) if is_src and events else b""
    length = torch.tensor([len(payload)], dtype=torch.int64, device=device)
    dist.broadcast(length, src=src, group=group)
    n = int(length.item())
    if n == 0:
        return []
    if is_src:
        buf = torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(device)
    else:
        buf = torch.empty(n, dtype=torch.uint8, device=device)
    dist.broadcast(buf, src=src, group=group)
    if is_src:
        return events
    return msgpack.unpackb(buf.cpu().numpy().tobytes(), raw=False)
