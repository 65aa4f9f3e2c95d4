"""A retry budget: retries may add at most ``ratio`` of first attempts (plus a small floor)
over a sliding window, so a failing upstream sees ~1.2x its normal load, not max_attempts x."""

from __future__ import annotations

from collections import deque

from gateway.clock import Clock


class RetryBudget:
    """Counts first attempts and retries over ``window_seconds``; grants retries within the ratio."""

    def __init__(self, clock: Clock, *, ratio: float = 0.2, floor: int = 3, window_seconds: float = 10.0) -> None:
        self._clock = clock
        self._ratio = ratio
        self._floor = floor
        self._window = window_seconds
        self._first: deque[float] = deque()
        self._retries: deque[float] = deque()

    def _trim(self, now: float) -> None:
        for times in (self._first, self._retries):
            while times and times[0] <= now - self._window:
                times.popleft()

    def record_first_attempt(self) -> None:
        """A new request went upstream. Attempts that left the window are dropped here too, not
        only when a retry is asked for: an upstream that never fails never asks."""
        now = self._clock.monotonic()
        self._trim(now)
        self._first.append(now)

    def try_retry(self) -> bool:
        """Spend one retry if the budget allows it."""
        now = self._clock.monotonic()
        self._trim(now)
        if len(self._retries) < self._floor + self._ratio * len(self._first):
            self._retries.append(now)
            return True
        return False
