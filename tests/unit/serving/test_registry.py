import pytest

from logitsmatch.serving.registry import Registry, RegistryError
from logitsmatch.serving.routing import RoundRobin


def registry():
    reg = Registry(RoundRobin())
    reg.add_engine(b"E0", "r0", now=0.0)
    reg.add_engine(b"E1", "r1", now=0.0)
    reg.add_client(b"C0", "c0")
    reg.add_client(b"C1", "c1")
    return reg


def test_two_clients_may_use_the_same_id_and_get_distinct_engine_ids():
    reg = registry()
    a, b = reg.assign(b"C0", "0"), reg.assign(b"C1", "0")
    assert a.engine_id != b.engine_id
    assert (a.replica, b.replica) == (b"E0", b"E1")
    assert reg.complete(b.engine_id).client == b"C1"
    assert reg.complete(b.engine_id) is None  # a second reply is dropped


def test_duplicate_id_in_flight_is_refused_until_it_completes():
    reg = registry()
    route = reg.assign(b"C0", "x")
    with pytest.raises(RegistryError) as info:
        reg.assign(b"C0", "x")
    assert info.value.code == "duplicate_id"
    reg.complete(route.engine_id)
    assert reg.assign(b"C0", "x").request_id == "x"


def test_no_replica_and_duplicate_names_are_refused():
    reg = Registry(RoundRobin())
    reg.add_client(b"C", "c")
    with pytest.raises(RegistryError, match="no engine replica"):
        reg.assign(b"C", "1")
    reg.add_engine(b"E", "r0", 0.0)
    with pytest.raises(RegistryError, match="already named 'r0'"):
        reg.add_engine(b"F", "r0", 0.0)


def test_removing_a_replica_returns_exactly_its_requests():
    reg = registry()
    routes = [reg.assign(b"C0", str(i)) for i in range(4)]
    replica, lost = reg.remove_engine(b"E1")
    assert replica.name == "r1"
    assert [r.request_id for r in lost] == ["1", "3"]
    assert reg.find(b"C0", "1") is None and reg.find(b"C0", "0") == routes[0]
    assert [load.outstanding for load in reg.loads()] == [2]


def test_removing_a_client_returns_its_requests_and_frees_the_replicas():
    reg = registry()
    reg.assign(b"C0", "a")
    reg.assign(b"C1", "b")
    assert [r.request_id for r in reg.remove_client(b"C0")] == ["a"]
    assert sum(load.outstanding for load in reg.loads()) == 1


def test_heartbeat_deadline():
    reg = registry()
    reg.seen(b"E0", 5.0)
    assert reg.expired(now=6.5, timeout_s=2.0) == [b"E1"]


def test_a_policy_returning_a_bad_index_is_an_error_reply_not_a_crash():
    reg = Registry(lambda loads: 7)
    reg.add_engine(b"E", "r0", 0.0)
    reg.add_client(b"C", "c")
    with pytest.raises(RegistryError, match=r"routing policy returned 7"):
        reg.assign(b"C", "1")


def test_a_client_past_its_cap_of_requests_in_flight_is_refused():
    reg = Registry(RoundRobin(), max_requests_per_client=2)
    reg.add_engine(b"e", "r0", 0.0)
    reg.add_client(b"c", "greedy")
    reg.add_client(b"d", "other")
    first = reg.assign(b"c", "1")
    reg.assign(b"c", "2")
    with pytest.raises(RegistryError) as info:
        reg.assign(b"c", "3")
    assert info.value.code == "too_many_requests" and "2 requests in flight" in info.value.message
    assert reg.assign(b"d", "1")  # the cap is per client
    reg.complete(first.engine_id)
    assert reg.assign(b"c", "3")


def test_a_silent_client_vanishes_after_the_deadline_and_a_talking_one_does_not():
    reg = Registry(RoundRobin())
    reg.add_client(b"quiet", "q", now=0.0)
    reg.add_client(b"chatty", "c", now=0.0)
    reg.seen(b"chatty", 9.0)
    assert reg.vanished(10.5, 10.0) == [b"quiet"]
