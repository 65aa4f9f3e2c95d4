"""Time, injected: every component asks a ``Clock`` instead of the system.

``SystemClock`` is production; ``ManualClock`` is the test double (shipped as code so tests,
the demo and benchmarks share it) whose time only moves when told to.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in Unix seconds."""

    def now(self) -> float: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that stands still until ``advance`` or ``set`` moves it (a test double)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._failure: Exception | None = None

    def now(self) -> float:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        return self._now

    def fail_next_reading(self, error: Exception) -> None:
        """Make the next ``now`` raise ``error`` (once): a fault in whatever reads the clock next."""
        self._failure = error

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, moment: float) -> None:
        self._now = moment


def utc_datetime(moment: float) -> datetime:
    """A Unix time as an aware UTC datetime."""
    return datetime.fromtimestamp(moment, tz=UTC)


def rfc3339(moment: float) -> str:
    """A Unix time as RFC 3339 UTC with a ``Z`` suffix, whole seconds."""
    return utc_datetime(moment).strftime("%Y-%m-%dT%H:%M:%SZ")
