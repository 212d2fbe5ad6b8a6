"""The coordinator's waiting room: clients take turns, one client keeps its own order, and a
replica is never sent more than its window of requests or prompt bytes."""

from __future__ import annotations

from logitsmatch.engine.request import SamplingParams
from logitsmatch.serving.fair_queue import FairQueue, Waiting, prompt_size
from logitsmatch.serving.registry import Registry, RegistryError
from logitsmatch.serving.routing import LeastOutstanding


def _w(rid: str, size: int = 5) -> Waiting:
    return Waiting(rid, "x" * size, SamplingParams(), False, (), size)


def _drain(q: FairQueue, fits=lambda w: True) -> list[tuple[bytes, str]]:
    out = []
    while (taken := q.take(fits)) is not None:
        out.append((taken[0], taken[1].request_id))
    return out


def test_clients_take_turns_and_each_keeps_its_own_order():
    q = FairQueue()
    for i in range(4):
        q.push(b"heavy", _w(f"h{i}"))
    q.push(b"light", _w("l0"))
    q.push(b"light", _w("l1"))
    assert len(q) == 6 and q.count(b"heavy") == 4 and q.holds(b"light", "l1")
    assert _drain(q) == [
        (b"heavy", "h0"),
        (b"light", "l0"),
        (b"heavy", "h1"),
        (b"light", "l1"),
        (b"heavy", "h2"),
        (b"heavy", "h3"),
    ]
    assert len(q) == 0 and not q.holds(b"light", "l1")


def test_a_client_whose_next_request_does_not_fit_lets_the_others_go_first():
    q = FairQueue()
    q.push(b"heavy", _w("h0", 1_000_000))
    q.push(b"light", _w("l0", 5))
    assert _drain(q, fits=lambda w: w.size < 100) == [(b"light", "l0")]
    assert q.count(b"heavy") == 1  # still waiting, first in turn


def test_remove_drop_and_drain():
    q = FairQueue()
    q.push(b"a", _w("1"))
    q.push(b"a", _w("2"))
    q.push(b"b", _w("3"))
    assert q.remove(b"a", "1").request_id == "1"
    assert q.remove(b"a", "nope") is None
    assert [w.request_id for w in q.drop_client(b"a")] == ["2"]
    assert q.count(b"a") == 0
    assert [(c, w.request_id) for c, w in q.drain()] == [(b"b", "3")]
    assert len(q) == 0


def test_prompt_size_counts_utf8_bytes_and_token_ids():
    assert prompt_size("héllo") == 6
    assert prompt_size((1, 2, 3)) == 12


def _registry(*names: str) -> Registry:
    reg = Registry(LeastOutstanding(), max_requests_per_client=3)
    for name in names:
        reg.add_engine(name.encode(), name, 0.0)
    reg.add_client(b"C", "c")
    return reg


def test_a_replica_with_a_full_window_of_requests_or_bytes_has_no_room():
    reg = _registry("r0", "r1")
    assert reg.with_room(10, window=1, window_bytes=100) == [b"r0", b"r1"]
    route = reg.assign(b"C", "a", size=60, among=reg.with_room(60, 1, 100))
    busy = route.replica
    assert busy not in reg.with_room(1, window=1, window_bytes=None)  # 1 request in flight
    assert busy in reg.with_room(40, window=2, window_bytes=100)  # 60 + 40 bytes fit
    assert busy not in reg.with_room(41, window=2, window_bytes=100)
    reg.complete(route.engine_id)
    assert reg.engines[busy].prompt_bytes == 0
    # a prompt larger than the byte window still goes to an idle replica, alone
    assert reg.with_room(10_000, window=2, window_bytes=100) == [b"r0", b"r1"]


def test_the_cap_counts_waiting_requests_and_duplicates_include_them():
    reg = _registry("r0")
    reg.assign(b"C", "a")
    try:
        reg.check_new(b"C", "b", waiting=False, queued=2)
    except RegistryError as e:
        assert e.code == "too_many_requests"
    else:
        raise AssertionError("a client past its cap was admitted")
    try:
        reg.check_new(b"C", "w", waiting=True)
    except RegistryError as e:
        assert e.code == "duplicate_id"
    else:
        raise AssertionError("a duplicate of a waiting request was admitted")


def test_the_bytes_waiting_are_counted_per_client_and_in_all():
    q = FairQueue()
    q.push(b"a", _w("1", 100))
    q.push(b"a", _w("2", 50))
    q.push(b"b", _w("3", 7))
    assert (q.bytes_of(b"a"), q.bytes_of(b"b"), q.bytes) == (150, 7, 157)
    q.take(lambda w: True)  # a's "1"
    q.remove(b"b", "3")
    assert (q.bytes_of(b"a"), q.bytes_of(b"b"), q.bytes) == (50, 0, 50)
    q.drop_client(b"a")
    assert q.bytes == 0
