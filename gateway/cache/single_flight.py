"""Single-flight loading within this process: concurrent loads of one key share one upstream
call. The call runs as its own task, so a caller that disconnects does not cancel it for the
others; what it loads goes into the entry store."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

from gateway.cache.entry import CacheEntry
from gateway.cache.keys import CacheKey
from gateway.cache.protocols import EntryStore, Loader

_T = TypeVar("_T")


class KeyedTasks(Generic[_T]):
    """At most one task per key, known while it runs and cancelled at ``close``: the task
    bookkeeping of a single-flight (this one, and the shared tier's)."""

    def __init__(self) -> None:
        self._tasks: dict[CacheKey, asyncio.Task[_T]] = {}

    def __contains__(self, key: CacheKey) -> bool:
        return key in self._tasks

    def get(self, key: CacheKey) -> asyncio.Task[_T] | None:
        """The task running for ``key``, if any."""
        return self._tasks.get(key)

    def start(self, key: CacheKey, work: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        """Run ``work`` as ``key``'s task until it ends (the caller checked none is running).

        The key is let go by the task's first done callback, which runs before those of anyone
        awaiting it, however it ends: cancelled before its first step too (a ``finally`` inside
        the task never ran then, and the key stayed taken by a dead task for good)."""
        task = asyncio.ensure_future(work)
        self._tasks[key] = task
        task.add_done_callback(lambda done: self._let_go(key, done))
        return task

    def _let_go(self, key: CacheKey, task: asyncio.Task[_T]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]

    def start_unwatched(self, key: CacheKey, work: Coroutine[Any, Any, _T]) -> None:
        """Like ``start``, for work nobody waits for: a failure leaves the current entry in place,
        and its exception is retrieved so it is not reported as never retrieved."""
        self.start(key, work).add_done_callback(lambda done: done.cancelled() or done.exception())

    async def close(self) -> None:
        """Cancel the tasks still running (at shutdown)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class LocalSingleFlight:
    """A ``SingleFlight`` over one process's tasks, storing what it loads in ``store``."""

    def __init__(self, store: EntryStore) -> None:
        self._store = store
        self._in_flight: KeyedTasks[CacheEntry] = KeyedTasks()

    def is_loading(self, key: CacheKey) -> bool:
        """Whether a load of ``key`` is under way."""
        return key in self._in_flight

    async def load(self, key: CacheKey, loader: Loader) -> tuple[CacheEntry, str]:
        """Load ``key`` once for all concurrent callers; returns the entry and ``"coalesced"``
        if this caller joined a load another caller started, else ``"miss"``."""
        task = self._in_flight.get(key)
        result = "miss" if task is None else "coalesced"
        if task is None:
            task = self._in_flight.start(key, self._load_and_store(key, loader))
        return await asyncio.shield(task), result

    def refresh_in_background(self, key: CacheKey, loader: Loader) -> None:
        """Start a load of ``key`` unless one is running; nobody waits for it."""
        if key not in self._in_flight:
            self._in_flight.start_unwatched(key, self._load_and_store(key, loader))

    async def _load_and_store(self, key: CacheKey, loader: Loader) -> CacheEntry:
        entry = await loader()
        self._store.put(key, entry)
        return entry

    async def close(self) -> None:
        """Cancel loads still under way (at shutdown)."""
        await self._in_flight.close()
