"""The local entry store: ready-to-send entries in this process, bounded in bytes.

Each entry carries its own ``keep_until`` (never served after it: the TTL plus the stale
windows, cut short by the earliest cover URL inside it and, for a body holding signed
cover-image links, by their ``serve_until``). cachetools' ``TLRUCache`` evicts by that per-entry
time and by total size, sized by the bytes each entry really holds.
"""

from __future__ import annotations

from cachetools import TLRUCache

from gateway.cache.entry import CacheEntry
from gateway.cache.keys import CacheKey
from gateway.clock import Clock


class LocalEntryStore:
    """A bounded in-process ``EntryStore``."""

    def __init__(self, *, max_bytes: int, clock: Clock) -> None:
        self._clock = clock
        self._entries: TLRUCache[CacheKey, CacheEntry] = TLRUCache(
            maxsize=max_bytes,
            ttu=lambda _key, entry, _now: entry.keep_until,
            timer=clock.now,
            getsizeof=lambda entry: entry.size,
        )

    def get(self, key: CacheKey) -> CacheEntry | None:
        """The entry for ``key`` if it may still be served (fresh or not), else ``None``."""
        try:  # one look-up: TLRUCache.get would check membership and expiry twice
            return self._entries[key]
        except KeyError:
            return None

    def put(self, key: CacheKey, entry: CacheEntry) -> None:
        """Store an entry; one larger than the whole cache, or already dead, is not kept."""
        if entry.keep_until <= self._clock.now() or entry.size > self._entries.maxsize:
            return
        self._entries[key] = entry

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
