"""The response cache on its own: per-entry expiry, the byte bound, single-flight loading."""

from __future__ import annotations

import asyncio

import pytest

from gateway.cache.store import CacheEntry, ResponseCache
from gateway.clock import ManualClock

pytestmark = pytest.mark.asyncio


def _entry(clock: ManualClock, body: bytes = b"{}", life: float = 60.0) -> CacheEntry:
    now = clock.now()
    return CacheEntry(body=body, etag='"x"', fetched_at=now, fresh_until=now + life, keep_until=now + life)


async def test_entry_disappears_at_its_own_keep_until() -> None:
    """Each entry expires at its own time, not a cache-wide TTL."""
    clock = ManualClock()
    cache = ResponseCache(max_bytes=1 << 20, clock=clock)
    cache.put("short", _entry(clock, life=10))
    cache.put("long", _entry(clock, life=100))
    clock.advance(11)
    assert cache.get("short") is None
    assert cache.get("long") is not None


async def test_total_size_stays_under_max_bytes() -> None:
    """Adding past max_bytes evicts least-recently-used entries; an entry bigger than the bound is not kept."""
    clock = ManualClock()
    cache = ResponseCache(max_bytes=20_000, clock=clock)
    for i in range(50):
        cache.put(i, _entry(clock, body=b"x" * 1000))
        assert cache.byte_count <= 20_000
    assert cache.get(49) is not None and cache.get(0) is None
    cache.put("huge", _entry(clock, body=b"x" * 30_000))
    assert cache.get("huge") is None


async def test_concurrent_loads_share_one_loader_call() -> None:
    """Many concurrent loads of one key run the loader once; all but the first say they joined."""
    clock = ManualClock()
    cache = ResponseCache(max_bytes=1 << 20, clock=clock)
    calls = 0
    release = asyncio.Event()

    async def loader() -> CacheEntry:
        nonlocal calls
        calls += 1
        await release.wait()
        return _entry(clock)

    waiters = [asyncio.ensure_future(cache.load("k", loader)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiters)
    assert calls == 1
    assert sorted(joined for _, joined in results) == [False] + [True] * 19
    assert cache.get("k") is not None


async def test_cancelled_first_caller_does_not_cancel_the_load() -> None:
    """The caller that started a load is cancelled; the load completes for the others and is stored."""
    clock = ManualClock()
    cache = ResponseCache(max_bytes=1 << 20, clock=clock)
    release = asyncio.Event()

    async def loader() -> CacheEntry:
        await release.wait()
        return _entry(clock)

    first = asyncio.ensure_future(cache.load("k", loader))
    second = asyncio.ensure_future(cache.load("k", loader))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    entry, joined = await second
    assert joined
    assert first.cancelled()
    assert cache.get("k") is entry


async def test_failed_load_is_not_stored_and_reaches_every_waiter() -> None:
    """A loader error goes to all waiters and nothing is cached."""
    clock = ManualClock()
    cache = ResponseCache(max_bytes=1 << 20, clock=clock)

    async def loader() -> CacheEntry:
        await asyncio.sleep(0)
        raise RuntimeError("upstream down")

    results = await asyncio.gather(*(cache.load("k", loader) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert cache.get("k") is None
