"""Per-key backoff: while the upstream fails for a cache key, that key is not asked again until
its backoff (exponential, or the upstream's Retry-After when longer) has passed.

A failing key keeps the kind and message of its last error, not the error: an exception holds
its traceback, whose frames hold what the failed load held (12 KB a key for a refused call, the
whole body for one refused as too large), for as long as the key is remembered."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from cachetools import TTLCache

from gateway.clock import Clock
from gateway.errors import UpstreamError


@dataclass(frozen=True, slots=True)
class _Failing:
    failures: int
    until: float
    kind: type[UpstreamError]
    message: str


class KeyBackoff:
    """Remembers failing keys (bounded in number and age) and when each may be tried again."""

    def __init__(self, clock: Clock, *, base_seconds: float = 1.0, cap_seconds: float = 30.0) -> None:
        self._clock = clock
        self._base = base_seconds
        self._cap = cap_seconds
        self._failing: TTLCache[Hashable, _Failing] = TTLCache(
            maxsize=100_000, ttl=cap_seconds * 4, timer=clock.monotonic
        )

    def blocked(self, key: Hashable) -> UpstreamError | None:
        """A fresh error like the last one while ``key`` is backing off, else ``None``."""
        failing = self._failing.get(key)
        now = self._clock.monotonic()
        if failing is None or now >= failing.until:
            return None
        return failing.kind(failing.message, outcome="backoff", retry_after_seconds=failing.until - now)

    def failed(self, key: Hashable, error: UpstreamError) -> float:
        """Count a failure of ``key`` and push its next try out; the seconds until then."""
        previous = self._failing.get(key)
        failures = previous.failures + 1 if previous else 1
        delay = min(self._cap, self._base * 2.0 ** min(failures - 1, 32))  # 2.0 ** 1024 overflows
        if error.retry_after_seconds is not None:
            delay = max(delay, min(self._cap, error.retry_after_seconds))
        self._failing[key] = _Failing(failures, self._clock.monotonic() + delay, type(error), error.message)
        return delay

    def succeeded(self, key: Hashable) -> None:
        """Forget ``key``'s failures, and those of keys that have not failed for a while: the
        cache drops expired keys only when written to, and after an outage the writes stop."""
        self._failing.pop(key, None)
        self._failing.expire()
