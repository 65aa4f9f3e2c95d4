"""The local entry store: ready-to-send entries in this process, bounded in bytes.

Each entry carries its own ``keep_until`` (never served after it: the TTL plus the stale
windows, cut short by the earliest cover URL inside it and, for a body holding signed
cover-image links, by their ``serve_until``). cachetools' ``TLRUCache`` evicts by that per-entry
time and by total size, sized by the bytes each entry really holds with its key (a key of long
filters can hold more than a small page's entry), least recently read first.
Reading its entries for a metric does not count as a read (it would make a scrape reorder them).

With ``max_bytes_per_tenant`` set, one tenant's entries hold at most that much: storing past it
drops that tenant's own oldest-stored entries first, so a tenant asking endless distinct queries
(every offset of its list is one) cannot evict every other tenant's pages. The keys each tenant
holds are tracked with their sizes in the order stored, and struck out as ``TLRUCache`` lets
them go (evicted, expired or deleted: ``_TellingTLRUCache``), so the count is exact, a store
costs a few dict operations, and a hit nothing.

Reads, one per cache hit, go through a front: a plain dict of the entries read since
``TLRUCache`` last changed. A read through ``TLRUCache`` costs three hashes of the key, its
timer and its recency list (0.6 µs, a tenth of a hit's Python); a read from the front costs a
look-up, moving the key to the front's end and the expiry check (0.3 µs). ``TLRUCache`` changes
only when written to (a write may evict any entry) and when it drops expired entries (on a
write, when its size is read, and before the cover-expiry metric), so the front is emptied
before each of those, its keys first passed on to ``TLRUCache``'s recency in the order of their
last reads: eviction still takes the least recently read entry, and the front never holds an
entry ``TLRUCache`` has dropped. A key read once between two writes costs two reads through
``TLRUCache`` (its first, and the pass-on); one read three times or more costs less than it
would without the front. A hit's key is read far more often than the store is written to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cachetools import Cache, TLRUCache

from gateway.cache.entry import CacheEntry
from gateway.cache.keys import CacheKey, key_bytes
from gateway.clock import Clock

FRONT_KEYS = 512
"""Keys the front holds; when full it is emptied (passed on) before the next key joins, so
passing it on never takes more than about a quarter of a millisecond (0.24 ms measured)."""


class _TellingTLRUCache(TLRUCache[CacheKey, CacheEntry]):
    """``TLRUCache`` telling ``gone`` of each key it lets go: deleted or evicted (``popitem``
    deletes), or expired (``expire`` deletes with the base class's method, and returns them)."""

    def __init__(self, *, gone: Callable[[CacheKey], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gone = gone

    def __delitem__(self, key: CacheKey) -> None:
        try:
            super().__delitem__(key)  # raises KeyError after deleting an expired item
        finally:
            self._gone(key)

    def expire(self, time: float | None = None) -> list[tuple[CacheKey, CacheEntry]]:
        expired = super().expire(time)
        for key, _ in expired:
            self._gone(key)
        return expired


class LocalEntryStore:
    """A bounded in-process ``EntryStore``."""

    def __init__(self, *, max_bytes: int, clock: Clock, max_bytes_per_tenant: int = 0) -> None:
        self._clock = clock
        self._tenant_bound = max_bytes_per_tenant if 0 < max_bytes_per_tenant < max_bytes else 0
        self._held_by_tenant: dict[str, dict[CacheKey, int]] = {}
        """With a tenant bound: the keys each tenant holds, with their sizes, in the order stored."""
        self._tenant_bytes: dict[str, int] = {}
        """The sum of those sizes by tenant."""
        self._stored_size = 0
        """The size of the entry ``put`` is storing, with its key's: ``TLRUCache`` asks for a size
        by the value alone, and only while storing one (``Cache.__setitem__``)."""
        options: dict[str, Any] = {
            "maxsize": max_bytes,
            "ttu": lambda _key, entry, _now: entry.keep_until,
            "timer": clock.now,
            "getsizeof": lambda _entry: self._stored_size,
        }
        self._entries: TLRUCache[CacheKey, CacheEntry] = (
            _TellingTLRUCache(gone=self._untrack, **options) if self._tenant_bound else TLRUCache(**options)
        )
        self._front: dict[CacheKey, CacheEntry] = {}
        """Entries read since ``TLRUCache`` last changed (or the front last filled up), least
        recently read first."""

    def get(self, key: CacheKey) -> CacheEntry | None:
        """The entry for ``key`` if it may still be served (fresh or not), else ``None``."""
        front = self._front
        try:
            entry = front.pop(key)
        except KeyError:
            return self._first_read(key)
        front[key] = entry
        if entry.keep_until <= self._clock.now():
            return None
        return entry

    def _first_read(self, key: CacheKey) -> CacheEntry | None:
        """``get`` for a key not in the front: read through ``TLRUCache``."""
        if len(self._front) >= FRONT_KEYS:
            self._empty_front()
        try:  # one look-up: TLRUCache.get would check membership and expiry twice
            entry = self._entries[key]
        except KeyError:
            return None
        self._front[key] = entry
        return entry

    def put(self, key: CacheKey, entry: CacheEntry) -> None:
        """Store an entry; one larger than the whole cache (or than a tenant's bound), or already
        dead, is not kept."""
        size = entry.size + key_bytes(key)
        if entry.keep_until <= self._clock.now() or size > (self._tenant_bound or self._entries.maxsize):
            return
        self._empty_front()
        if self._tenant_bound:
            self._make_room_within_tenant(key, size)
        self._stored_size = size
        self._entries[key] = entry
        if self._tenant_bound:  # after: storing may evict, and so let go of, this very key's old entry
            self._track(key, size)

    def _make_room_within_tenant(self, key: CacheKey, size: int) -> None:
        """Drop the oldest-stored entries of ``key``'s tenant until ``size`` more fits its bound."""
        tenant = key[0]
        self._untrack(key)  # stored again: its old size goes
        held = self._held_by_tenant.get(tenant, {})
        while held and self._tenant_bytes[tenant] + size > self._tenant_bound:
            oldest = next(iter(held))
            self._entries.pop(oldest, None)
            self._untrack(oldest)  # already, unless it had expired unseen

    def _track(self, key: CacheKey, size: int) -> None:
        self._held_by_tenant.setdefault(key[0], {})[key] = size
        self._tenant_bytes[key[0]] = self._tenant_bytes.get(key[0], 0) + size

    def _untrack(self, key: CacheKey) -> None:
        held = self._held_by_tenant.get(key[0])
        size = None if held is None else held.pop(key, None)
        if size is not None:
            self._tenant_bytes[key[0]] -= size

    def earliest_cover_expiry(self) -> float | None:
        """The earliest expiry of any cover URL held in any live entry (a metric: the entries
        are read without counting as reads for their recency)."""
        self._empty_front()
        entries = self._entries
        entries.expire()
        held = (Cache.__getitem__(entries, key) for key in entries)  # the base class's read: no reordering
        return min((e.earliest_cover_expiry for e in held if e.earliest_cover_expiry is not None), default=None)

    def _empty_front(self) -> None:
        """Move each key read from the front to the recent end of ``TLRUCache``'s recency, in
        the order of their last reads (one expired meanwhile is skipped); empty the front."""
        entries = self._entries
        for key in self._front:
            try:
                entries[key]  # TLRUCache's read moves the key to the recent end
            except KeyError:
                continue  # expired meanwhile
        self._front = {}

    @property
    def entry_count(self) -> int:
        """Entries currently held (``TLRUCache`` drops the expired ones first)."""
        self._empty_front()
        return len(self._entries)

    @property
    def byte_count(self) -> int:
        """Bytes currently held, as the bound counts them (the expired ones dropped first)."""
        self._empty_front()
        return int(self._entries.currsize)
