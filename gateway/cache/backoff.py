"""Per-key backoff: while the upstream fails for a cache key, that key is not asked again until
its backoff (exponential up to a cap, or the upstream's Retry-After when longer, up to
``RETRY_AFTER_MAX_SECONDS``) has passed.

A failing key keeps the kind and message of its last error, not the error: an exception holds
its traceback, whose frames hold what the failed load held (12 KB a key for a refused call, the
whole body for one refused as too large), for as long as the key is remembered.

The keys remembered are bounded in bytes (``KEPT_BYTES``), not in number: a list key holds
its query (up to about 4 KB with three long filters), and while the upstream fails for a tenant
each distinct query it asks is a new key, so 100,000 of them held about 400 MiB that no cache
limit counted."""

from __future__ import annotations

from dataclasses import dataclass

from cachetools import TLRUCache

from gateway.cache.keys import CacheKey, key_bytes
from gateway.clock import Clock
from gateway.errors import UpstreamError


@dataclass(frozen=True, slots=True)
class _Failing:
    failures: int
    until: float
    kind: type[UpstreamError]
    message: str
    size: int
    """Bytes the key and this record hold (``KEPT_BYTES`` counts them)."""


KEPT_BYTES = 8 * 1024 * 1024
"""The most the failing keys remembered may hold; past it the least recently failed go first.
(cachetools' ``TLRUCache`` keeps an evicted item in its expiry heap until the heap holds twice
as many items as the cache, so the keys held can reach about twice this.)"""
ENTRY_OVERHEAD_BYTES = 450
"""What remembering one key holds besides the key: this record and the cache's own bookkeeping
(its item, heap entry and dict slot), 350 bytes measured with ``tracemalloc``, and a message."""


def remembered_bytes(key: CacheKey) -> int:
    """What remembering a backoff for ``key`` holds, as ``KEPT_BYTES`` counts it."""
    return key_bytes(key) + ENTRY_OVERHEAD_BYTES


RETRY_AFTER_MAX_SECONDS = 300.0
"""The longest a key backs off for an upstream's ``Retry-After`` (the doubling stops at the cap,
30 s by default; the upstream's word is kept up to this, beyond which it is not believed)."""


class KeyBackoff:
    """Remembers failing keys (bounded in bytes and age) and when each may be tried again."""

    def __init__(self, clock: Clock, *, base_seconds: float = 1.0, cap_seconds: float = 30.0) -> None:
        self._clock = clock
        self._base = base_seconds
        self._cap = cap_seconds
        # A key is remembered four caps past its last failure (so its doubling goes on), and at
        # least until its backoff ends (a Retry-After may be longer).
        self._failing: TLRUCache[CacheKey, _Failing] = TLRUCache(
            maxsize=KEPT_BYTES,
            ttu=lambda _key, failing, now: max(now + cap_seconds * 4, failing.until),
            timer=clock.monotonic,
            getsizeof=lambda failing: failing.size,
        )

    def blocked(self, key: CacheKey) -> UpstreamError | None:
        """A fresh error like the last one while ``key`` is backing off, else ``None``."""
        failing = self._failing.get(key)
        now = self._clock.monotonic()
        if failing is None or now >= failing.until:
            return None
        return failing.kind(failing.message, outcome="backoff", retry_after_seconds=failing.until - now)

    def failed(self, key: CacheKey, error: UpstreamError) -> float:
        """Count a failure of ``key`` and push its next try out; the seconds until then."""
        previous = self._failing.get(key)
        failures = previous.failures + 1 if previous else 1
        delay = min(self._cap, self._base * 2.0 ** min(failures - 1, 32))  # 2.0 ** 1024 overflows
        if error.retry_after_seconds is not None:  # the upstream's word, within reason
            delay = max(delay, min(RETRY_AFTER_MAX_SECONDS, error.retry_after_seconds))
        size = previous.size if previous else remembered_bytes(key)
        self._failing[key] = _Failing(failures, self._clock.monotonic() + delay, type(error), error.message, size)
        return delay

    def succeeded(self, key: CacheKey) -> None:
        """Forget ``key``'s failures, and those of keys that have not failed for a while: the
        cache drops expired keys only when written to, and after an outage the writes stop."""
        self._failing.pop(key, None)
        self._failing.expire()
