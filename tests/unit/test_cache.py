"""The cache room on its own: per-entry expiry, the byte bound, single-flight loading, the
freshness rule and the key schema."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Callable

import pytest

from gateway.cache.cover_links import COVER_LINKS_BYTES, LocalCoverLinks
from gateway.cache.entry import CacheEntry, CoverLink
from gateway.cache.freshness import Freshness, freshness
from gateway.cache.keys import CacheKey, job_key, key_bytes, list_key
from gateway.cache.single_flight import LocalSingleFlight
from gateway.cache.store import FRONT_KEYS, LocalEntryStore
from gateway.clock import ManualClock
from gateway.jobs.query import parse_list_query

pytestmark = pytest.mark.asyncio


def _entry(clock: ManualClock, body: bytes = b"{}", life: float = 60.0) -> CacheEntry:
    now = clock.now()
    return CacheEntry(body=body, etag='"x"', fetched_at=now, fresh_until=now + life, keep_until=now + life)


async def test_entry_disappears_at_its_own_keep_until() -> None:
    """Each entry expires at its own time, not a cache-wide TTL."""
    clock = ManualClock()
    cache = LocalEntryStore(max_bytes=1 << 20, clock=clock)
    cache.put(job_key("acme", "short"), _entry(clock, life=10))
    cache.put(job_key("acme", "long"), _entry(clock, life=100))
    clock.advance(11)
    assert cache.get(job_key("acme", "short")) is None
    assert cache.get(job_key("acme", "long")) is not None


async def test_total_size_stays_under_max_bytes() -> None:
    """Adding past max_bytes evicts least-recently-used entries; an entry bigger than the bound is not kept."""
    clock = ManualClock()
    cache = LocalEntryStore(max_bytes=20_000, clock=clock)
    for i in range(50):
        cache.put(job_key("acme", str(i)), _kilobyte(clock))
        assert cache.byte_count <= 20_000
    assert cache.get(job_key("acme", "49")) is not None and cache.get(job_key("acme", "0")) is None
    cache.put(job_key("acme", "huge"), _entry(clock, body=b"x" * 30_000))
    assert cache.get(job_key("acme", "huge")) is None


@pytest.mark.parametrize("bound", [0, 6_000], ids=["no tenant bound", "tenant bound"])
async def test_a_tenant_bound_keeps_one_tenants_flood_from_evicting_the_others(bound: int) -> None:
    """globex stores 50 distinct pages (1.8 KB each, as counted) in a 20 KB cache. With
    max_bytes_per_tenant at 6 KB, acme's three pages stay (globex's own oldest go), and globex's
    entries hold at most 6 KB, its newest pages; with no tenant bound (as before), globex's flood
    evicts all of acme's."""
    clock = ManualClock()
    cache = LocalEntryStore(max_bytes=20_000, max_bytes_per_tenant=bound, clock=clock)
    acme = [job_key("acme", str(i)) for i in range(3)]
    for key in acme:
        cache.put(key, _kilobyte(clock))
    for i in range(50):
        cache.put(list_key("globex", (("offset", str(i)),)), _kilobyte(clock))
    kept = [key for key in acme if cache.get(key) is not None]
    globex_kept = [i for i in range(50) if cache.get(list_key("globex", (("offset", str(i)),))) is not None]
    if bound:
        assert kept == acme
        assert globex_kept == [47, 48, 49]
        assert cache.byte_count <= 2 * bound
    else:
        assert kept == [] and globex_kept


async def test_a_tenant_bound_counts_only_what_the_tenant_still_holds() -> None:
    """Three tenants, each bound to 6 KB, in a 12 KB cache: entries that expired, or that the
    whole cache's bound evicted, no longer count against their tenant, so acme's pages stored
    after globex's and initech's pushed its old ones out all stay, with acme's new ones."""
    clock = ManualClock()
    cache = LocalEntryStore(max_bytes=12_000, max_bytes_per_tenant=6_000, clock=clock)
    for i in range(3):
        cache.put(job_key("acme", f"short-{i}"), _entry(clock, body=b"x" * 1000, life=5))
    clock.advance(10)
    for tenant in ("acme", "globex", "initech"):  # 9 pages of 1.8 KB: acme's go first, least recent
        for i in range(3):
            cache.put(job_key(tenant, f"old-{i}"), _kilobyte(clock))
    assert cache.get(job_key("acme", "old-0")) is None
    fresh = [job_key("acme", f"new-{i}") for i in range(3)]
    for key in fresh:
        cache.put(key, _kilobyte(clock))
    assert all(cache.get(key) is not None for key in fresh)
    assert cache.byte_count <= 12_000


async def test_a_tenant_bound_counts_a_page_stored_again_once() -> None:
    """A page re-fetched and stored again under its key replaces its own size in the tenant's
    count: the tenant's other pages stay."""
    clock = ManualClock()
    cache = LocalEntryStore(max_bytes=1 << 20, max_bytes_per_tenant=6_000, clock=clock)
    keys = [job_key("acme", str(i)) for i in range(3)]
    for key in keys:
        cache.put(key, _kilobyte(clock))
    for _ in range(20):
        cache.put(keys[0], _kilobyte(clock))
    assert all(cache.get(key) is not None for key in keys)


def _kilobyte(clock: ManualClock) -> CacheEntry:
    return _entry(clock, body=b"x" * 1000)


def _full_store(clock: ManualClock, keys: list[CacheKey]) -> LocalEntryStore:
    """A store holding a 1 KB entry under each of ``keys``, with room for no more."""
    size = _kilobyte(clock).size + max(map(key_bytes, keys))
    cache = LocalEntryStore(max_bytes=len(keys) * size + size // 2, clock=clock)
    for key in keys:
        cache.put(key, _kilobyte(clock))
    return cache


def _store_of_three(clock: ManualClock) -> LocalEntryStore:
    """A store holding entries a, b and c, with room for no fourth."""
    return _full_store(clock, [job_key("acme", name) for name in "abc"])


def _held(cache: LocalEntryStore) -> str:
    return "".join(name for name in "abcd" if cache.get(job_key("acme", name)) is not None)


def _short_query(n: int) -> CacheKey:
    return list_key("acme", parse_list_query([("offset", str(n))]))


def _long_filters(n: int) -> CacheKey:
    """Three filters of 256 characters in CJK, as a search box might send them."""
    return list_key("acme", parse_list_query([(name, char * 250 + f"{n:06d}") for name, char in _FILTERS]))


_FILTERS = [("name", "名"), ("tag", "標"), ("batch_name", "批")]


@pytest.mark.parametrize("make_key", [_short_query, _long_filters])
async def test_the_byte_bound_counts_all_a_stored_page_holds_its_key_included(
    make_key: Callable[[int], CacheKey],
) -> None:
    """Empty pages (the answer to a filter that matches nothing) stored under keys made as a
    request's are: the bytes the store counts against max_bytes (and reports as the
    cache_bytes metric) are at least what it really holds. Counted without their keys, long
    filters held 4.35 times the count, and short queries 1.36 times."""
    clock = ManualClock()
    cache = LocalEntryStore(max_bytes=1 << 30, clock=clock)
    body = b'{"count":0,"offset":0,"limit":10,"jobs":[]}'
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(1000):
            cache.put(make_key(n), _entry(clock, body=bytes(bytearray(body)), life=3600))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert cache.entry_count == 1000
    assert held <= cache.byte_count


async def test_eviction_takes_the_least_recently_read_entry_repeated_reads_included() -> None:
    """Reads after the first since a write count for recency as the first does: a was read
    last, so b goes when d comes in, although a's first read came before b's."""
    clock = ManualClock()
    cache = _store_of_three(clock)
    for name in "abca":
        assert cache.get(job_key("acme", name)) is not None
    cache.put(job_key("acme", "d"), _kilobyte(clock))
    assert _held(cache) == "acd"


async def test_recency_holds_when_more_keys_are_read_than_the_front_holds() -> None:
    """Reading more keys between two writes than the store keeps in front still leaves the least
    recently read entry to go first: k0 was read again while the front was full, before it was
    passed on and emptied, so k1 goes."""
    clock = ManualClock()
    keys = [job_key("acme", f"k{n}") for n in range(FRONT_KEYS + 2)]
    cache = _full_store(clock, keys)
    for key in [*keys[:FRONT_KEYS], keys[0], *keys[FRONT_KEYS:]]:
        assert cache.get(key) is not None
    cache.put(job_key("acme", "new"), _kilobyte(clock))
    assert [key for key in keys if cache.get(key) is None] == [keys[1]]


async def test_an_entry_read_before_is_not_served_once_evicted_replaced_or_past_keep_until() -> None:
    """Reads answered from memory see every write and the entry's own keep_until."""
    clock = ManualClock()
    cache = _store_of_three(clock)
    assert cache.get(job_key("acme", "a")) is not None
    cache.put(job_key("acme", "d"), _kilobyte(clock))  # a was read before: b goes
    assert _held(cache) == "acd"
    replacement = _entry(clock, body=b"y" * 1000)
    cache.put(job_key("acme", "a"), replacement)
    assert cache.get(job_key("acme", "a")) is replacement
    clock.advance(60)
    assert cache.get(job_key("acme", "a")) is None


async def test_a_metrics_scrape_does_not_change_which_entry_is_evicted() -> None:
    """The metrics read every entry (the cover expiry, the counts): that is not a read for
    recency. a was read last and b least recently, so b goes, scrape or not."""
    clock = ManualClock()
    cache = _store_of_three(clock)
    for name in "bca":
        cache.get(job_key("acme", name))
    assert cache.earliest_cover_expiry() is None and cache.entry_count == 3 and cache.byte_count > 0
    cache.put(job_key("acme", "d"), _kilobyte(clock))
    assert _held(cache) == "acd"


async def test_an_entry_dropped_as_expired_stays_dropped_when_the_wall_clock_steps_back() -> None:
    """A scrape drops expired entries; one read before is not served again from memory if the
    clock then steps back (NTP, a resumed VM) into its life, as it was not before the front."""
    clock = ManualClock()
    cache = LocalEntryStore(max_bytes=1 << 20, clock=clock)
    cache.put(job_key("acme", "a"), _entry(clock, life=10))
    assert cache.get(job_key("acme", "a")) is not None
    clock.advance(11)
    assert cache.entry_count == 0
    clock.advance(-6)
    assert cache.get(job_key("acme", "a")) is None


async def test_reading_every_entry_of_a_large_store_holds_little_memory_beside_it() -> None:
    """The entries read since the last write are kept in front of the cache, FRONT_KEYS at most:
    reading 20,000 entries once each holds a few tens of KB more, not a dict of 20,000."""
    clock = ManualClock()
    cache = LocalEntryStore(max_bytes=1 << 30, clock=clock)
    keys = [job_key("acme", f"k{n}") for n in range(20_000)]
    for key in keys:
        cache.put(key, _entry(clock))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key in keys:
            cache.get(key)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 100_000


async def test_concurrent_loads_share_one_loader_call() -> None:
    """Many concurrent loads of one key run the loader once; all but the first say they joined."""
    clock = ManualClock()
    cache = LocalEntryStore(max_bytes=1 << 20, clock=clock)
    flights = LocalSingleFlight(cache)
    calls = 0
    release = asyncio.Event()

    async def loader() -> CacheEntry:
        nonlocal calls
        calls += 1
        await release.wait()
        return _entry(clock)

    waiters = [asyncio.ensure_future(flights.load(job_key("acme", "k"), loader)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiters)
    assert calls == 1
    assert sorted(result for _, result in results) == ["coalesced"] * 19 + ["miss"]
    assert cache.get(job_key("acme", "k")) is not None


async def test_cancelled_first_caller_does_not_cancel_the_load() -> None:
    """The caller that started a load is cancelled; the load completes for the others and is stored."""
    clock = ManualClock()
    cache = LocalEntryStore(max_bytes=1 << 20, clock=clock)
    flights = LocalSingleFlight(cache)
    release = asyncio.Event()

    async def loader() -> CacheEntry:
        await release.wait()
        return _entry(clock)

    first = asyncio.ensure_future(flights.load(job_key("acme", "k"), loader))
    second = asyncio.ensure_future(flights.load(job_key("acme", "k"), loader))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    entry, result = await second
    assert result == "coalesced"
    assert first.cancelled()
    assert cache.get(job_key("acme", "k")) is entry


async def test_failed_load_is_not_stored_and_reaches_every_waiter() -> None:
    """A loader error goes to all waiters and nothing is cached."""
    clock = ManualClock()
    cache = LocalEntryStore(max_bytes=1 << 20, clock=clock)
    flights = LocalSingleFlight(cache)

    async def loader() -> CacheEntry:
        await asyncio.sleep(0)
        raise RuntimeError("upstream down")

    results = await asyncio.gather(
        *(flights.load(job_key("acme", "k"), loader) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert cache.get(job_key("acme", "k")) is None


async def test_a_load_called_off_before_it_ran_lets_its_key_go() -> None:
    """A refresh started just before shutdown and called off before its first step: its key is
    no longer loading, a later load runs, and no coroutine is left never awaited (the key stayed
    taken by the dead task for good, and Python warned of the coroutine)."""
    clock = ManualClock()
    cache = LocalEntryStore(max_bytes=1 << 20, clock=clock)
    flights = LocalSingleFlight(cache)
    key = job_key("acme", "k")

    async def loader() -> CacheEntry:
        return _entry(clock)

    flights.refresh_in_background(key, loader)
    await flights.close()
    gc.collect()  # a coroutine never awaited is reported when it is collected: an error here
    assert not flights.is_loading(key)
    _, result = await flights.load(key, loader)
    assert result == "miss"


async def test_the_cover_links_known_hold_at_most_their_bytes() -> None:
    """80,000 pre-signed cover URLs of 1.5 KB (as temporary credentials make them): the index
    holds about COVER_LINKS_BYTES (32 MiB), the least recently used forgotten first. It was
    bounded at 100,000 links, up to 230 MiB with such URLs, outside every other bound."""
    links = LocalCoverLinks()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(80_000):
            url = f"https://obs.example.com/c/{number}.png?X-Amz-Signature={'s' * 1500}"
            links.remember("acme", {f"job-{number}": CoverLink(url, 1.7e9)})
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < COVER_LINKS_BYTES * 1.2
    assert links.get("acme", "job-79999") is not None and links.get("acme", "job-0") is None


def _times(fetched_at: float, fresh_until: float, keep_until: float) -> CacheEntry:
    return CacheEntry(body=b"{}", etag='"x"', fetched_at=fetched_at, fresh_until=fresh_until, keep_until=keep_until)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (0.0, Freshness.FRESH),
        (89.9, Freshness.FRESH),
        (91.0, Freshness.REFRESH_AHEAD),  # the last tenth of a 100 s fresh life
        (100.0, Freshness.STALE_WHILE_REVALIDATE),
        (109.9, Freshness.STALE_WHILE_REVALIDATE),
        (110.0, Freshness.STALE_IF_ERROR),
        (499.9, Freshness.STALE_IF_ERROR),
        (500.0, Freshness.MISS),
    ],
)
async def test_freshness_walks_through_every_state_as_time_passes(now: float, expected: Freshness) -> None:
    """Fresh, refresh-ahead in the last tenth, stale-while-revalidate, stale-if-error, then a miss."""
    assert freshness(_times(0.0, 100.0, 500.0), now, stale_while_revalidate_seconds=10.0) is expected


async def test_no_entry_is_a_miss() -> None:
    """Nothing cached is a miss."""
    assert freshness(None, 0.0, stale_while_revalidate_seconds=10.0) is Freshness.MISS


async def test_entry_cut_short_by_a_cover_is_a_miss_at_keep_until_even_inside_the_windows() -> None:
    """keep_until (cut short by the earliest cover) wins over the stale-while-revalidate window."""
    entry = _times(0.0, 50.0, 55.0)
    assert freshness(entry, 54.0, stale_while_revalidate_seconds=10.0) is Freshness.STALE_WHILE_REVALIDATE
    assert freshness(entry, 55.0, stale_while_revalidate_seconds=10.0) is Freshness.MISS


async def test_keys_name_the_tenant_first_and_never_collide_across_kinds_or_tenants() -> None:
    """A list key and a job key, or two tenants' keys, are never equal."""
    query = (("offset", "0"), ("limit", "10"))
    keys = {list_key("acme", query), list_key("globex", query), job_key("acme", "j1"), job_key("globex", "j1")}
    assert len(keys) == 4
    assert all(key[0] in ("acme", "globex") for key in keys)
