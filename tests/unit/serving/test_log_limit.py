"""A flood of warnings becomes a few lines and a count."""

import logging

import pytest

from logitsmatch.serving.log_limit import RateLimitedLog


def test_a_flood_logs_the_first_lines_of_a_window_then_one_count(caplog):
    logger = logging.getLogger("test-flood")
    limited = RateLimitedLog(logger, per_window=3, window_s=10.0)
    with caplog.at_level(logging.WARNING, logger="test-flood"):
        for i in range(10_000):
            limited.note(f"bad frame {i}", now=1.0 + i * 1e-4)
        limited.flush(5.0)  # the window is not over: nothing more yet
        assert len(caplog.records) == 3
        limited.flush(11.5)
        limited.note("later", now=12.0)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:3] == ["bad frame 0", "bad frame 1", "bad frame 2"]
    assert lines[3] == "9997 more like that in the last 10 s, not logged one by one"
    assert lines[4] == "later" and len(lines) == 5


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        RateLimitedLog(logging.getLogger("x"), per_window=0)


def test_a_line_a_peer_makes_long_is_cut_and_keeps_its_level(caplog):
    logger = logging.getLogger("test-long")
    limited = RateLimitedLog(logger, max_chars=40)
    with caplog.at_level(logging.INFO, logger="test-long"):
        limited.note("unknown field " + "K" * 2_000_000, now=1.0, level=logging.INFO)
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == "unknown field " + "K" * 26 + "... (2000014 chars)"
