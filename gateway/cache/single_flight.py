"""Single-flight loading within this process: concurrent loads of one key share one upstream
call. The call runs as its own task, so a caller that disconnects does not cancel it for the
others; what it loads goes into the entry store."""

from __future__ import annotations

import asyncio

from gateway.cache.entry import CacheEntry
from gateway.cache.keys import CacheKey
from gateway.cache.protocols import EntryStore, Loader


class LocalSingleFlight:
    """A ``SingleFlight`` over one process's tasks, storing what it loads in ``store``."""

    def __init__(self, store: EntryStore) -> None:
        self._store = store
        self._in_flight: dict[CacheKey, asyncio.Task[CacheEntry]] = {}

    def is_loading(self, key: CacheKey) -> bool:
        """Whether a load of ``key`` is under way."""
        return key in self._in_flight

    async def load(self, key: CacheKey, loader: Loader) -> tuple[CacheEntry, str]:
        """Load ``key`` once for all concurrent callers; returns the entry and ``"coalesced"``
        if this caller joined a load another caller started, else ``"miss"``."""
        task = self._in_flight.get(key)
        result = "miss" if task is None else "coalesced"
        if task is None:
            task = self._start(key, loader)
        return await asyncio.shield(task), result

    def refresh_in_background(self, key: CacheKey, loader: Loader) -> None:
        """Start a load of ``key`` unless one is running; nobody waits for it."""
        if key not in self._in_flight:
            # A failed background refresh leaves the current entry in place; retrieve the
            # exception so it is not reported as never retrieved.
            self._start(key, loader).add_done_callback(lambda done: done.cancelled() or done.exception())

    def _start(self, key: CacheKey, loader: Loader) -> asyncio.Task[CacheEntry]:
        task = asyncio.ensure_future(self._load_and_store(key, loader))
        self._in_flight[key] = task
        return task

    async def _load_and_store(self, key: CacheKey, loader: Loader) -> CacheEntry:
        try:
            entry = await loader()
            self._store.put(key, entry)
            return entry
        finally:
            del self._in_flight[key]

    async def close(self) -> None:
        """Cancel loads still under way (at shutdown)."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
