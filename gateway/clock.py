"""Time, injected: every component asks a ``Clock`` instead of the system.

``SystemClock`` is production; ``ManualClock`` is the test double (shipped as code so tests,
the demo and benchmarks share it) whose time only moves when told to.

Two readings. ``now`` is wall time, for instants shared with others: expiry times the cloud and
the identity provider write, cover links, signed links, entry times other replicas read, log
and header dates. ``monotonic`` only moves forward, for this process's own durations: backoffs,
breaker and budget windows, cooldowns. The wall clock can step (NTP at boot, a VM resumed after
suspend), and a duration measured on it would then last hours longer, or end at once.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in Unix seconds, and a clock for durations."""

    def now(self) -> float: ...

    def monotonic(self) -> float:
        """Seconds that only move forward, from an arbitrary start: for durations only."""
        ...


class SystemClock:
    """The real wall clock, and the system's monotonic clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that stands still until ``advance`` or ``set`` moves it (a test double). Moving
    it forward is time passing, for both readings; moving it back is a step of the wall clock
    alone (``monotonic`` stays where it is)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._monotonic = 1000.0
        self._failure: Exception | None = None

    def now(self) -> float:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        return self._now

    def fail_next_reading(self, error: Exception) -> None:
        """Make the next ``now`` raise ``error`` (once): a fault in whatever reads the clock next."""
        self._failure = error

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._monotonic += max(0.0, seconds)

    def set(self, moment: float) -> None:
        self.advance(moment - self._now)


def utc_datetime(moment: float) -> datetime:
    """A Unix time as an aware UTC datetime."""
    return datetime.fromtimestamp(moment, tz=UTC)


def rfc3339(moment: float) -> str:
    """A Unix time as RFC 3339 UTC with a ``Z`` suffix, whole seconds."""
    return utc_datetime(moment).strftime("%Y-%m-%dT%H:%M:%SZ")
