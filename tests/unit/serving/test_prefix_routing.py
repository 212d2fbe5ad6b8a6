import pytest

from logitsmatch.engine.prefix_cache import chain_keys
from logitsmatch.serving.prefix_routing import PrefixAffinity
from logitsmatch.serving.registry import Registry
from logitsmatch.serving.routing import ReplicaLoad, RoundRobin

A = chain_keys(list(range(48)), 16)  # 3 blocks
B = chain_keys([7] * 48, 16)
PART = chain_keys(list(range(32)) + [9] * 16, 16)  # A's first 2 blocks, then its own


def idle(n: int) -> list[ReplicaLoad]:
    return [ReplicaLoad(f"r{i}", 0) for i in range(n)]


def test_a_prompt_goes_where_its_prefix_went_and_a_new_one_to_the_most_free():
    route = PrefixAffinity("longest_prefix", max_requests=4)
    assert route(idle(3), A) == 0  # nothing cached anywhere: most free, then lowest index
    loads = [ReplicaLoad("r0", 1), ReplicaLoad("r1", 0), ReplicaLoad("r2", 0)]
    assert route(loads, A) == 0  # 0.5 * 1 + 0.5 * 3/4 beats 0.5 * 4/4
    assert route(loads, B) == 1
    assert route(loads, PART) == 0  # r0 holds 2 of its 3 blocks


def test_load_outweighs_a_short_match_and_alpha_sets_the_trade():
    loads = [ReplicaLoad("r0", 4), ReplicaLoad("r1", 0)]
    shallow = PrefixAffinity("longest_prefix", max_requests=4)
    shallow(idle(2), A[:1])  # r0 holds A's first block
    # 0.5 * 1/3 + 0 (r0 full) < 0.5 * 1 (r1 empty)
    assert shallow(loads, A) == 1
    greedy = PrefixAffinity("longest_prefix", max_requests=4, alpha=1.0)
    greedy(idle(2), A[:1])
    assert greedy(loads, A) == 0


def test_first_prefix_block_looks_at_the_first_block_only():
    route = PrefixAffinity("first_prefix_block", max_requests=8)
    route(idle(2), A)
    loads = [ReplicaLoad("r0", 0), ReplicaLoad("r1", 0)]
    route._remember("r1", A)  # r1 later got all of A, r0 only ever its first block
    assert route(loads, PART) == 1  # both hold block 0; r1 more recently


def test_a_replica_that_left_is_not_chosen_for_what_it_held():
    route = PrefixAffinity("longest_prefix", max_requests=4)
    route(idle(2), A)
    assert route([ReplicaLoad("r1", 0), ReplicaLoad("r2", 0)], A) == 0  # r1: free, lowest


def test_the_table_is_bounded():
    route = PrefixAffinity("longest_prefix", max_requests=4, max_keys=4)
    route(idle(2), A)
    route(idle(2), B)
    assert len(route._holders) == 4 and A[0] not in route._holders


def test_a_replica_that_reports_a_block_forgotten_no_longer_draws_its_prompts():
    route = PrefixAffinity("longest_prefix", max_requests=4)
    loads = [ReplicaLoad("r0", 1), ReplicaLoad("r1", 0)]
    route(idle(2), A)
    assert route.holds("r0", A[2])
    route.forget("r0", A[1:])  # it evicted A's last two blocks
    assert route.holds("r0", A[0]) and not route.holds("r0", A[2])
    route.forget("r0", A[:1])
    assert not route.holds("r0", A[0])
    assert route(loads, A) == 1  # nothing cached anywhere now: the most free replica


def test_the_registry_keeps_keys_a_request_in_flight_will_prefill_again():
    reg = Registry(RoundRobin(), PrefixAffinity("longest_prefix", max_requests=4))
    reg.add_engine(b"r0", "r0", 0.0)
    reg.add_client(b"c", "client")
    done = reg.assign(b"c", "1", A)
    reg.complete(done.engine_id)
    pending = reg.assign(b"c", "2", A[:2])  # in flight, needs A's first two blocks
    assert pending.keys == tuple(A[:2])
    reg.forget_prefix(b"r0", A)  # a report that predates request 2
    assert reg.prefix is not None
    assert [reg.prefix.holds("r0", k) for k in A] == [True, True, False]
    reg.complete(pending.engine_id)
    reg.forget_prefix(b"r0", A)
    assert not any(reg.prefix.holds("r0", k) for k in A)
    reg.forget_prefix(b"gone", A)  # an unknown replica: nothing to do


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("shortest_prefix", 4), r"'shortest_prefix' is unknown; use one of \['longest_prefix'"),
        (("longest_prefix", 4, 1.5), r"alpha must be in \[0, 1\], got 1.5"),
        (("longest_prefix", 0), r"max_requests must be >= 1, got 0"),
    ],
)
def test_bad_settings_are_refused_by_name(args, message):
    with pytest.raises(ValueError, match=message):
        PrefixAffinity(*args)


def test_the_registry_routes_keyless_requests_by_its_policy():
    reg = Registry(RoundRobin(), PrefixAffinity("longest_prefix", max_requests=4))
    for name in ("r0", "r1"):
        reg.add_engine(name.encode(), name, 0.0)
    reg.add_client(b"c", "client")
    first = reg.assign(b"c", "1", A)
    again = reg.assign(b"c", "2", A)
    assert first.replica == again.replica == b"r0"
    assert [reg.assign(b"c", str(i)).replica for i in (3, 4)] == [b"r0", b"r1"]
