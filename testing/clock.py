"""A wall clock for the partner rate limits, whose windows are whole minutes of the wall clock (partners.limits):
a test that ran on the real clock and started at hh:mm:59 would see its counts split across two windows. This one
stands still at the start of a window until the test moves it. And a clock ahead of the real one, for pauses that
should have passed."""

from __future__ import annotations

import time as real_time

WINDOW_SECONDS = 60


class WindowClock:
    """Stands in for the `time` module of partners.limits: `time()` is the start of the current real one-minute
    window (so the day, and anything compared with the real clock, stays today) until `advance` moves it; everything
    else (`monotonic`, `perf_counter`...) is the real module's."""

    def __init__(self):
        now = real_time.time()
        self.now = now - now % WINDOW_SECONDS

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def next_window(self) -> None:
        """To the first second of the next window."""
        self.now = self.now - self.now % WINDOW_SECONDS + WINDOW_SECONDS

    def __getattr__(self, name: str):
        return getattr(real_time, name)


class LaterClock:
    """Stands in for a module's `time` module: the real clock, `seconds` ahead (`monotonic` and `time`), so that a
    pause measured with it (a circuit breaker's) has passed without the test waiting for it."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def monotonic(self) -> float:
        return real_time.monotonic() + self.seconds

    def time(self) -> float:
        return real_time.time() + self.seconds

    def __getattr__(self, name: str):
        return getattr(real_time, name)
