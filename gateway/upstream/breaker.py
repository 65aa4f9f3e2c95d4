"""A circuit breaker on the upstream error ratio over a sliding window, with half-open probing.

Hand-written rather than purgatory: purgatory opens after N *consecutive* failures, while we
want a failure *ratio* over a time window (a trickle of errors in heavy traffic should not
open it, a burst of them in light traffic should), and the state must be a metric.

States: ``closed`` (calls flow, outcomes counted per second), ``open`` (calls refused at once
for ``open_seconds``), ``half_open`` (one probe at a time; its success closes the circuit,
its failure opens it again). Opening from closed is logged as a warning, closing again as info
(a probe that fails, re-opening it, is not: the outage goes on).
"""

from __future__ import annotations

import logging
from collections import deque

from gateway.clock import Clock
from gateway.config.settings import CircuitBreakerSettings

logger = logging.getLogger(__name__)

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
ADMITTED, PROBE = "admitted", "probe"
"""How ``allow`` let a call through (closed, or as half-open's one probe); ``record`` is told."""
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class CircuitBreaker:
    """Decides whether an upstream call may be made, from recent outcomes."""

    def __init__(self, policy: CircuitBreakerSettings, clock: Clock, name: str = "") -> None:
        self._policy = policy
        self._clock = clock
        self._name = name
        """What the circuit guards, for the log (the app user id its calls are made as)."""
        self._state = CLOSED
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._seconds: deque[list[float]] = deque()  # [second, calls, failures]

    @property
    def state(self) -> str:
        if self._state == OPEN and self._clock.monotonic() >= self._opened_at + self._policy.open_seconds:
            return HALF_OPEN
        return self._state

    def state_value(self) -> float:
        """The state as a number, for the metric: 0 closed, 1 half-open, 2 open."""
        return STATE_VALUES[self.state]

    def opens_for(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when it is not open)."""
        if self._state != OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._policy.open_seconds - self._clock.monotonic())

    def allow(self) -> str | None:
        """Whether a call may go out now, and how: ``ADMITTED`` while closed, ``PROBE`` for
        half-open's one probe at a time, ``None`` when refused."""
        state = self.state
        if state == CLOSED:
            return ADMITTED
        if state == HALF_OPEN and not self._probe_in_flight:
            self._state = HALF_OPEN
            self._probe_in_flight = True
            return PROBE
        return None

    def record(self, permit: str, *, failed: bool) -> None:
        """Count the outcome of one call ``allow`` let through as ``permit`` and move between
        states. Only the probe's outcome decides half-open; a call let through before the circuit
        opened, ending after, is old news."""
        if permit == PROBE:
            self._probe_in_flight = False
            if failed:
                self._open()
            else:
                self._state = CLOSED
                self._seconds.clear()
                logger.info("upstream calls for app user %s flow again: the circuit closed", self._name)
            return
        if self._state != CLOSED:
            return
        now = self._clock.monotonic()
        second = float(int(now))
        if self._seconds and self._seconds[-1][0] == second:
            self._seconds[-1][1] += 1
            self._seconds[-1][2] += failed
        else:
            self._seconds.append([second, 1, float(failed)])
        while self._seconds and self._seconds[0][0] <= now - self._policy.window_seconds:
            self._seconds.popleft()
        calls = sum(bucket[1] for bucket in self._seconds)
        failures = sum(bucket[2] for bucket in self._seconds)
        if calls >= self._policy.min_calls and failures / calls >= self._policy.failure_ratio:
            self._open()
            logger.warning(
                "upstream calls for app user %s are paused for %g s (the circuit opened): %d of %d calls"
                " failed in the last %g s; cached lists are served stale meanwhile",
                self._name,
                self._policy.open_seconds,
                failures,
                calls,
                self._policy.window_seconds,
            )

    def _open(self) -> None:
        self._state = OPEN
        self._opened_at = self._clock.monotonic()
        self._seconds.clear()
