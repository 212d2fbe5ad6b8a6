"""A warning log that a flood cannot turn into gigabytes: a few lines a window, then a count.

Every bad frame used to be logged at WARNING: 418k frames made 121 MB of log. Now the first
``per_window`` of each ``window_s`` are logged, and the rest are counted and reported in one
line when the window ends (``flush``, called from the coordinator's tick).
"""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, per_window: int = 20, window_s: float = 10.0):
        if per_window < 1 or not window_s > 0:
            raise ValueError("RateLimitedLog: per_window >= 1 and window_s > 0")
        self.logger, self.per_window, self.window_s = logger, per_window, window_s
        self._window_end = 0.0
        self._logged = 0
        self.suppressed = 0  # in the current window

    def note(self, message: str, now: float | None = None) -> None:
        """Log ``message`` at WARNING unless this window has had its share (then count it)."""
        now = time.monotonic() if now is None else now
        self.flush(now)
        if self._window_end == 0.0:
            self._window_end = now + self.window_s
        if self._logged < self.per_window:
            self._logged += 1
            self.logger.warning("%s", message)
        else:
            self.suppressed += 1

    def flush(self, now: float) -> None:
        """At the end of a window: report how many lines it left out, and start afresh."""
        if self._window_end == 0.0 or now < self._window_end:
            return
        if self.suppressed:
            self.logger.warning(
                "%d more like that in the last %.0f s, not logged one by one",
                self.suppressed,
                self.window_s,
            )
        self._window_end, self._logged, self.suppressed = 0.0, 0, 0
