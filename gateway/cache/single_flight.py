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
    bookkeeping of a single-flight (this one, and the shared tier's).

    Callers wait for a key's task through a future of their own (``start``, ``join``): a caller
    called off cancels its own future, never the task the others wait for. The task sets their
    results itself as it ends, so they resume on the loop's next turn; awaiting the task through
    ``asyncio.shield`` they resumed two turns later (its done callback, then the shield's)."""

    def __init__(self) -> None:
        self._tasks: dict[CacheKey, tuple[asyncio.Task[_T], list[asyncio.Future[_T]]]] = {}

    def __contains__(self, key: CacheKey) -> bool:
        return key in self._tasks

    def join(self, key: CacheKey) -> asyncio.Future[_T] | None:
        """A future of the caller's own for the task running for ``key``, ``None`` if none runs."""
        running = self._tasks.get(key)
        if running is None:
            return None
        waiter: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        running[1].append(waiter)
        return waiter

    def start(self, key: CacheKey, work: Coroutine[Any, Any, _T]) -> asyncio.Future[_T]:
        """Run ``work`` as ``key``'s task until it ends (the caller checked none is running), and
        join it."""
        self.start_unwatched(key, work)
        waiter = self.join(key)
        assert waiter is not None  # just started
        return waiter

    def start_unwatched(self, key: CacheKey, work: Coroutine[Any, Any, _T]) -> None:
        """Run ``work`` as ``key``'s task, for nobody yet: a failure nobody joined is dropped (and
        retrieved, so it is not reported as never retrieved).

        The key is let go, and the futures of those waiting are resolved, as the task ends; if it
        is cancelled before its first step, by its done callback (a ``finally`` inside the task
        never runs then, and the key would stay taken by a dead task for good)."""
        waiters: list[asyncio.Future[_T]] = []
        task = asyncio.ensure_future(self._run(key, work, waiters))
        self._tasks[key] = (task, waiters)
        task.add_done_callback(lambda done: self._ended(key, done, work, waiters))

    async def _run(self, key: CacheKey, work: Coroutine[Any, Any, _T], waiters: list[asyncio.Future[_T]]) -> _T:
        try:
            result = await work
        except BaseException as exc:
            self._let_go(key, waiters)
            for waiter in waiters:
                _fail(waiter, exc)
            raise
        self._let_go(key, waiters)  # first: a caller the result wakes finds the key free
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(result)
        return result

    def _ended(
        self,
        key: CacheKey,
        task: asyncio.Task[_T],
        work: Coroutine[Any, Any, _T],
        waiters: list[asyncio.Future[_T]],
    ) -> None:
        # All but no-ops unless the task was cancelled before its first step: ``work`` was never
        # awaited then (closed, Python does not warn of it), and nobody told those waiting.
        self._let_go(key, waiters)
        work.close()
        for waiter in waiters:
            waiter.cancel()
        if not task.cancelled():
            task.exception()

    def _let_go(self, key: CacheKey, waiters: list[asyncio.Future[_T]]) -> None:
        running = self._tasks.get(key)
        if running is not None and running[1] is waiters:
            del self._tasks[key]

    async def close(self) -> None:
        """Cancel the tasks still running (at shutdown)."""
        tasks = [task for task, _ in self._tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _fail(waiter: asyncio.Future[Any], exc: BaseException) -> None:
    """Tell a waiter its task failed (cancelled: it is cancelled too), unless it left."""
    if waiter.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        waiter.cancel()
    else:
        waiter.set_exception(exc)


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
        waiter = self._in_flight.join(key)
        result = "miss" if waiter is None else "coalesced"
        if waiter is None:
            waiter = self._in_flight.start(key, self._load_and_store(key, loader))
        return await waiter, result

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
