"""The cache's seams: what the use case needs from a store, single-flight loading, a per-key
failure backoff and the cover-link facts. The local implementations are in this package; a
shared tier implements the same protocols. All synchronous methods answer from memory: a
shared implementation keeps a local front and feeds it in the background."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol

from gateway.cache.entry import CacheEntry, CoverLink
from gateway.cache.keys import CacheKey
from gateway.errors import UpstreamError

Loader = Callable[[], Awaitable[CacheEntry]]


class EntryStore(Protocol):
    """Ready-to-send entries by key, each kept until its own ``keep_until``."""

    def get(self, key: CacheKey) -> CacheEntry | None:
        """The entry for ``key`` if it may still be served (fresh or not), else ``None``."""

    def put(self, key: CacheKey, entry: CacheEntry) -> None:
        """Store ``entry`` (one already dead, or larger than the store, is not kept)."""


class SingleFlight(Protocol):
    """One load per key at a time, shared by every caller that wants it."""

    def is_loading(self, key: CacheKey) -> bool:
        """Whether a load of ``key`` is under way."""

    async def load(self, key: CacheKey, loader: Loader) -> tuple[CacheEntry, str]:
        """The loaded (and stored) entry, and how this caller got it: ``"miss"`` (its load asked the
        upstream), ``"coalesced"`` (it joined a load under way) or ``"hit"`` (another replica had
        already loaded it: a shared tier's answer)."""

    def refresh_in_background(self, key: CacheKey, loader: Loader) -> None:
        """Start a load of ``key`` that nobody waits for, unless one is under way."""

    async def close(self) -> None:
        """Cancel loads still under way."""


class Backoff(Protocol):
    """Per-key failure memory: a failing key is not asked again until its backoff has passed."""

    def blocked(self, key: CacheKey) -> UpstreamError | None:
        """An error like the last one while ``key`` is backing off, else ``None``."""

    def failed(self, key: CacheKey, error: UpstreamError) -> float:
        """Count a failure of ``key``; the seconds until it may be tried again."""

    def succeeded(self, key: CacheKey) -> None:
        """Forget ``key``'s failures."""


class CoverLinks(Protocol):
    """The freshest known cover link of each (tenant, job)."""

    def get(self, tenant_id: str, job_id: str) -> CoverLink | None:
        """The known link, servable or not."""

    def remember(self, tenant_id: str, covers: Mapping[str, CoverLink]) -> None:
        """Note the links a load just brought, by job id."""

    def forget(self, tenant_id: str, job_ids: Iterable[str]) -> None:
        """Drop the links of jobs a load just found without a cover, or gone."""
