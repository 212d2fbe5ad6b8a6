import itertools

import pytest

from logitsmatch.engine.arrivals import Arrivals


def test_a_seeded_poisson_schedule_is_replayable_and_has_the_asked_rate():
    times = Arrivals(per_sec=4.0, seed=7).times(2000)
    assert times == Arrivals(per_sec=4.0, seed=7).times(2000)
    assert times != Arrivals(per_sec=4.0, seed=8).times(2000)
    assert all(b > a for a, b in itertools.pairwise(times))
    assert 3.8 < 2000 / times[-1] < 4.2  # the mean rate of 2000 arrivals


def test_no_rate_means_all_at_once_and_the_log_says_how_they_came():
    assert Arrivals().times(3) == [0.0, 0.0, 0.0]
    assert Arrivals().describe(3) == "all 3 at once"
    assert Arrivals(per_step=2).describe(5) == "2 per engine step (5 requests)"
    line = Arrivals(per_sec=2.0, seed=1).describe(2)
    assert line.startswith("Poisson 2/s, seed 1: request i at [") and line.endswith("] s")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_step": 0}, r"--incoming-requests-per-step must be an int >= 1, got 0"),
        ({"per_sec": float("nan")}, r"--incoming-requests-per-sec must be a finite number"),
        ({"per_step": 2, "per_sec": 1.0}, r"exclude each other: give one"),
    ],
)
def test_bad_arrivals_name_the_flag(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Arrivals(**kwargs)
