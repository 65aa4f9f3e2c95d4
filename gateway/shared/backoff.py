"""The per-key failure backoff, shared: this replica's own failures (the local ``KeyBackoff``)
plus the backoffs other replicas published, which a replica learns from the fill script the
first time it asks for the key and then answers from memory."""

from __future__ import annotations

from cachetools import TTLCache

from gateway.cache.backoff import KEPT_BYTES, KeyBackoff, remembered_bytes
from gateway.cache.keys import CacheKey
from gateway.clock import Clock
from gateway.errors import UpstreamError, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable

_KINDS: dict[str, type[UpstreamError]] = {
    kind.__name__: kind for kind in (UpstreamRejected, UpstreamUnavailable, UpstreamTimeout)
}
LEARNED_MAX_SECONDS = 300.0


class SharedBackoff:
    """A ``Backoff`` that also honours the backoffs other replicas set."""

    def __init__(self, local: KeyBackoff, clock: Clock) -> None:
        self._local = local
        self._clock = clock
        # (until, error type, bytes held): bounded in bytes, as the local backoff's keys are.
        self._learned: TTLCache[CacheKey, tuple[float, type[UpstreamError], int]] = TTLCache(
            maxsize=KEPT_BYTES, ttl=LEARNED_MAX_SECONDS, timer=clock.monotonic, getsizeof=lambda learned: learned[2]
        )

    def blocked(self, key: CacheKey) -> UpstreamError | None:
        """An error like the last one while ``key`` is backing off here or elsewhere, else ``None``."""
        own = self._local.blocked(key)
        if own is not None:
            return own
        learned = self._learned.get(key)
        if learned is None:
            return None
        until, kind, _ = learned
        now = self._clock.monotonic()
        return kind(outcome="backoff", retry_after_seconds=until - now) if now < until else None

    def failed(self, key: CacheKey, error: UpstreamError) -> float:
        """Count a failure of ``key`` here (the load that failed publishes it); the seconds until
        it may be tried again."""
        return self._local.failed(key, error)

    def succeeded(self, key: CacheKey) -> None:
        """Forget ``key``'s failures."""
        self._local.succeeded(key)
        self._learned.pop(key, None)

    def learn(self, key: CacheKey, kind: str, seconds: float) -> UpstreamError:
        """Note that another replica's load of ``key`` failed with ``kind`` and may not be retried
        for ``seconds``; returns the error to answer with meanwhile."""
        error_type = _KINDS.get(kind, UpstreamUnavailable)
        seconds = min(seconds, LEARNED_MAX_SECONDS)  # a foreign value's lifetime, as any replica bounds it
        self._learned[key] = (self._clock.monotonic() + seconds, error_type, remembered_bytes(key))
        return error_type(outcome="backoff", retry_after_seconds=seconds)
