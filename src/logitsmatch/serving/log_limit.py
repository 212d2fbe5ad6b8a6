"""A log that a flood cannot turn into gigabytes: a few short lines a window, then a count.

Every bad frame used to be logged at WARNING: 418k frames made 121 MB of log. Now the first
``per_window`` of each ``window_s`` are logged, each cut to ``max_chars`` (a peer picks what a
line quotes), and the rest are counted and reported in one line when the window ends
(``flush``, called from the coordinator's tick). Every line a peer can cause goes through one.
"""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        per_window: int = 20,
        window_s: float = 10.0,
        max_chars: int = 300,
    ):
        if per_window < 1 or not window_s > 0 or max_chars < 1:
            raise ValueError("RateLimitedLog: per_window >= 1, window_s > 0, max_chars >= 1")
        self.logger, self.per_window, self.window_s = logger, per_window, window_s
        self.max_chars = max_chars
        self._window_end = 0.0
        self._logged = 0
        self.suppressed = 0  # in the current window

    def note(self, message: str, now: float | None = None, level: int = logging.WARNING) -> None:
        """Log ``message`` (cut to ``max_chars``) at ``level`` unless this window has had its
        share (then count it)."""
        now = time.monotonic() if now is None else now
        self.flush(now)
        if self._window_end == 0.0:
            self._window_end = now + self.window_s
        if self._logged < self.per_window:
            self._logged += 1
            if len(message) > self.max_chars:
                message = f"{message[: self.max_chars]}... ({len(message)} chars)"
            self.logger.log(level, "%s", message)
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
