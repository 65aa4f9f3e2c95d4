"""The response cache: ready-to-send bodies, per-entry expiry, a byte bound, and single-flight.

Keys are built by the caller and always contain the tenant. Each entry carries its own
``keep_until`` (never served after it: the TTL, cut short by the earliest cover URL inside it)
and ``fresh_until`` (served as a hit before it). cachetools' ``TLRUCache`` evicts by that
per-entry time and by total size, sized by the bytes each entry really holds.

``load`` is single-flight: concurrent loads of one key share one upstream call, and that call
runs as its own task, so a caller that disconnects does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field

from cachetools import TLRUCache

from gateway.clock import Clock

# What one entry costs beyond its body: the entry object, its key tuple, the etag and the
# cache's own bookkeeping (a dict slot, a TTL link, an LRU link). Measured with sys.getsizeof.
_ENTRY_OVERHEAD_BYTES = 600


@dataclass(frozen=True, slots=True)
class CoverLink:
    """A cover URL as the upstream issued it, and when it stops working."""

    url: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A response ready to send, with the times that govern serving it."""

    body: bytes
    etag: str
    fetched_at: float
    fresh_until: float
    keep_until: float
    covers: Mapping[str, CoverLink] = field(default_factory=dict)
    earliest_cover_expiry: float | None = None
    gzip_body: bytes | None = None
    """The body gzip-compressed once, for clients that accept it (``None`` for small bodies)."""

    @property
    def gzip_etag(self) -> str:
        """The ETag of the gzip representation (a different byte sequence, so a different tag)."""
        return self.etag[:-1] + '-gzip"'

    @property
    def size(self) -> int:
        """Bytes held: both bodies, the cover links, and a fixed overhead."""
        cover_bytes = sum(sys.getsizeof(link.url) + 150 for link in self.covers.values())
        gzip_bytes = sys.getsizeof(self.gzip_body) if self.gzip_body is not None else 0
        return sys.getsizeof(self.body) + gzip_bytes + len(self.etag) + cover_bytes + _ENTRY_OVERHEAD_BYTES


class ResponseCache:
    """A bounded cache of ``CacheEntry`` with single-flight loading."""

    def __init__(self, *, max_bytes: int, clock: Clock) -> None:
        self._clock = clock
        self._entries: TLRUCache[Hashable, CacheEntry] = TLRUCache(
            maxsize=max_bytes,
            ttu=lambda _key, entry, _now: entry.keep_until,
            timer=clock.now,
            getsizeof=lambda entry: entry.size,
        )
        self._in_flight: dict[Hashable, asyncio.Task[CacheEntry]] = {}

    def get(self, key: Hashable) -> CacheEntry | None:
        """The entry for ``key`` if it may still be served (fresh or not), else ``None``."""
        try:  # one look-up: TLRUCache.get would check membership and expiry twice
            return self._entries[key]
        except KeyError:
            return None

    def put(self, key: Hashable, entry: CacheEntry) -> None:
        """Store an entry; one larger than the whole cache, or already dead, is not kept."""
        if entry.keep_until <= self._clock.now() or entry.size > self._entries.maxsize:
            return
        self._entries[key] = entry

    def is_loading(self, key: Hashable) -> bool:
        """Whether a load of ``key`` is under way."""
        return key in self._in_flight

    async def load(self, key: Hashable, loader: Callable[[], Awaitable[CacheEntry]]) -> tuple[CacheEntry, bool]:
        """Load ``key`` once for all concurrent callers; returns the entry and whether this
        caller joined a load another caller started."""
        task = self._in_flight.get(key)
        joined = task is not None
        if task is None:
            task = self._start(key, loader)
        return await asyncio.shield(task), joined

    def refresh_in_background(self, key: Hashable, loader: Callable[[], Awaitable[CacheEntry]]) -> None:
        """Start a load of ``key`` unless one is running; nobody waits for it."""
        if key not in self._in_flight:
            # A failed background refresh leaves the current entry in place; retrieve the
            # exception so it is not reported as never retrieved.
            self._start(key, loader).add_done_callback(lambda done: done.cancelled() or done.exception())

    def _start(self, key: Hashable, loader: Callable[[], Awaitable[CacheEntry]]) -> asyncio.Task[CacheEntry]:
        task = asyncio.ensure_future(self._load_and_store(key, loader))
        self._in_flight[key] = task
        return task

    async def _load_and_store(self, key: Hashable, loader: Callable[[], Awaitable[CacheEntry]]) -> CacheEntry:
        try:
            entry = await loader()
            self.put(key, entry)
            return entry
        finally:
            del self._in_flight[key]

    async def close(self) -> None:
        """Cancel loads still under way (at shutdown)."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def earliest_cover_expiry(self) -> float | None:
        """The earliest expiry of any cover URL held in any live entry."""
        self._entries.expire()
        return min(
            (e.earliest_cover_expiry for e in self._entries.values() if e.earliest_cover_expiry is not None),
            default=None,
        )

    @property
    def entry_count(self) -> int:
        """Entries currently held (expired ones may linger until the next write)."""
        return len(self._entries)

    @property
    def byte_count(self) -> int:
        """Bytes currently held, as the bound counts them."""
        return int(self._entries.currsize)
