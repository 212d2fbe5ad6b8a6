"""Requests that wait in the coordinator for room on a replica, served fairly across clients.

A replica takes at most a window of requests (and of prompt bytes) at once; the rest wait
here, one FIFO per client. When room frees, the clients take turns: the first client in turn
whose oldest request fits goes, then moves to the back of the turn. So one client's backlog of
heavy prompts delays another client's short request by at most one heavy prompt per replica
slot, not by the whole backlog (which a FIFO at the replica would tokenize first). A single
client is served in its own order, exactly as before. Plain Python.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from logitsmatch.engine.request import SamplingParams


@dataclass(frozen=True)
class Waiting:
    """One client request not yet sent to a replica (``size``: its prompt's bytes)."""

    request_id: str
    prompt: str | tuple[int, ...]
    sampling: SamplingParams
    stream: bool
    keys: tuple[bytes, ...]
    size: int


def prompt_size(prompt: str | tuple[int, ...]) -> int:
    """What a prompt costs a replica to take in: UTF-8 bytes, or 4 bytes a token id."""
    return len(prompt.encode()) if isinstance(prompt, str) else 4 * len(prompt)


class FairQueue:
    """Per-client FIFOs and the turn order of the clients that have something waiting."""

    def __init__(self) -> None:
        self._queues: OrderedDict[bytes, deque[Waiting]] = OrderedDict()
        self._ids: dict[bytes, set[str]] = {}
        self._bytes: dict[bytes, int] = {}
        self.bytes = 0  # of every waiting prompt

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def push(self, client: bytes, item: Waiting) -> None:
        self._queues.setdefault(client, deque()).append(item)
        self._ids.setdefault(client, set()).add(item.request_id)
        self._bytes[client] = self._bytes.get(client, 0) + item.size
        self.bytes += item.size

    def bytes_of(self, client: bytes) -> int:
        """The bytes of ``client``'s waiting prompts."""
        return self._bytes.get(client, 0)

    def count(self, client: bytes) -> int:
        return len(self._ids.get(client, ()))

    def holds(self, client: bytes, request_id: str) -> bool:
        return request_id in self._ids.get(client, ())

    def take(self, fits: Callable[[Waiting], bool]) -> tuple[bytes, Waiting] | None:
        """The oldest request of the first client in turn for which ``fits`` holds (that
        client then goes to the back of the turn); None when nothing fits."""
        for client, queue in self._queues.items():
            if fits(queue[0]):
                item = queue.popleft()
                self._forget(client, item)
                if queue:
                    self._queues.move_to_end(client)
                else:
                    del self._queues[client]
                return client, item
        return None

    def remove(self, client: bytes, request_id: str) -> Waiting | None:
        """Take one waiting request out (an abort before it was sent)."""
        queue = self._queues.get(client)
        for item in queue or ():
            if item.request_id == request_id:
                queue.remove(item)  # type: ignore[union-attr]
                self._forget(client, item)
                if not queue:
                    del self._queues[client]
                return item
        return None

    def drop_client(self, client: bytes) -> list[Waiting]:
        """Everything a client had waiting (it left)."""
        self._ids.pop(client, None)
        self.bytes -= self._bytes.pop(client, 0)
        return list(self._queues.pop(client, ()))

    def drain(self) -> list[tuple[bytes, Waiting]]:
        """Everything waiting, in turn order (to fail it: the service stopped)."""
        items = [(c, item) for c, q in self._queues.items() for item in q]
        self._queues.clear()
        self._ids.clear()
        self._bytes.clear()
        self.bytes = 0
        return items

    def _forget(self, client: bytes, item: Waiting) -> None:
        ids = self._ids[client]
        ids.discard(item.request_id)
        self._bytes[client] -= item.size
        self.bytes -= item.size
        if not ids:
            del self._ids[client]
            del self._bytes[client]
