import pytest

from logitsmatch.serving.routing import LeastOutstanding, ReplicaLoad, RoundRobin, make_policy


def loads(*counts):
    return [ReplicaLoad(f"r{i}", n) for i, n in enumerate(counts)]


def test_least_outstanding_picks_the_least_loaded():
    policy = LeastOutstanding()
    assert policy(loads(3, 1, 2)) == 1
    assert policy(loads(0, 5, 5)) == 0


def test_least_outstanding_rotates_between_ties():
    policy = LeastOutstanding()
    picks = {policy(loads(2, 0, 0, 2)) for _ in range(4)}
    assert picks == {1, 2}


def test_round_robin_ignores_load():
    policy = RoundRobin()
    assert [policy(loads(0, 9, 9)) for _ in range(4)] == [0, 1, 2, 0]


def test_make_policy_by_name_or_callable():
    assert isinstance(make_policy("round_robin"), RoundRobin)
    custom = lambda loads: len(loads) - 1  # noqa: E731
    assert make_policy(custom) is custom
    with pytest.raises(ValueError, match="routing policy 'random' is unknown"):
        make_policy("random")
