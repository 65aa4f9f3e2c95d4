"""Single-flight across replicas: the L2 cache in Redis and the fill lease, in one round trip.

On an L1 miss (and for a refresh-ahead) one script reads the entry from Redis and, when there is
none fresh enough, takes the key's fill lease (``SET NX PX`` with a random token) unless the key
is backing off. Then:

* an entry came back: it goes into L1 and is served (``X-Cache: HIT`` when no wait was needed);
* the key is backing off (another replica's load failed): the same error, until the backoff ends;
* this replica holds the lease: it calls the upstream (renewing the lease while the call runs),
  writes the entry fenced by its token (a holder whose lease lapsed cannot overwrite what a later
  holder wrote), and publishes a hint; a failure writes the backoff and releases the lease;
* another replica holds it: wait for the Pub/Sub hint, polling in case a hint is lost, never past
  the request's upstream deadline; when the lease lapses (its holder died) one waiter takes it, so
  a dead holder costs at most one lease time and one more upstream call.

Within the replica, callers of one key share one task, as in the local single-flight. Whenever
Redis is unavailable the replica loads on its own (L2 counts as a miss).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from functools import partial

from gateway.cache.entry import CacheEntry
from gateway.cache.keys import CacheKey
from gateway.cache.protocols import EntryStore, Loader
from gateway.cache.single_flight import KeyedTasks
from gateway.clock import Clock
from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.shared.backoff import SharedBackoff
from gateway.shared.codec import decode_entry, encode_entry
from gateway.shared.keys import KeySpace
from gateway.shared.tier import RedisTier, SharedUnavailable

LEASE_SECONDS = 2.0
"""A fill lease lapses this long after its holder last renewed it (what a dead holder costs)."""
RENEW_SECONDS = LEASE_SECONDS / 4
POLL_SECONDS = 0.1
"""A waiter looks again this often even without a hint."""
IGNORE_STORED = 1e300
"""A floor no stored entry passes: asked with it, the fill script takes the lease (or waits for
its holder) whatever Redis holds, so the fill replaces an entry this replica refused."""
CLOCK_SKEW_SECONDS = 60.0
"""How far ahead of this replica's clock another replica's entry times may run and still be
believed (see ``LeasedSingleFlight._adopt``)."""
KEPT_PAST_FRESH_SECONDS = LEASE_SECONDS
"""How long Redis keeps an entry past its ``fresh_until``. The fill script hands out only entries
fresher than the asker's (a replica's stale-if-error is served from its own L1, which holds the
entry to its ``keep_until``), so an entry kept to its ``keep_until`` (an hour past a minute's
freshness by default, for a page without cover links) was kept some sixty times longer than any
replica could use it. The margin is for replicas whose clocks differ a little."""

_FILL_OR_LEASE = """
-- KEYS: entry, lease, backoff. ARGV: fresh_until a stored entry must pass, token, lease ms.
-- A key of another type, a value that is not a number, a lease or backoff that never expires
-- (none of them written by a replica) counts as absent: the lease is taken, the fill replaces it.
if redis.call('TYPE', KEYS[1]).ok == 'hash' then
  local stored = redis.call('HMGET', KEYS[1], 'fresh_until', 'entry')
  local fresh = tonumber(stored[1])
  if fresh and stored[2] and fresh > tonumber(ARGV[1]) then return {'entry', stored[2]} end
end
local backoff, left = redis.call('TYPE', KEYS[3]).ok, redis.call('PTTL', KEYS[3])
if backoff == 'string' and left > 0 then return {'backoff', redis.call('GET', KEYS[3]), left} end
if backoff ~= 'none' then redis.call('DEL', KEYS[3]) end
if redis.call('PTTL', KEYS[2]) == -1 then redis.call('DEL', KEYS[2]) end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return {'lease'} end
return {'wait'}
"""
_FILL = """
-- KEYS: entry, lease, backoff. ARGV: token, fresh_until, entry, ms to keep it, hint channel.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'fresh_until', ARGV[2], 'entry', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[5], KEYS[1])
return 1
"""
_GIVE_UP = """
-- KEYS: entry, lease, backoff. ARGV: token, error kind, backoff ms (0: none), hint channel.
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3]) end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('PUBLISH', ARGV[4], KEYS[1])
return 1
"""
_RENEW = """
-- KEYS: lease. ARGV: token, lease ms.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

Fetched = tuple[CacheEntry, str]


class LeasedSingleFlight:
    """A ``SingleFlight`` shared by every replica on one Redis, with L1 (``store``) in front."""

    def __init__(
        self,
        *,
        store: EntryStore,
        tier: RedisTier,
        backoff: SharedBackoff,
        clock: Clock,
        wait_seconds: float,
        fresh_seconds: float,
        kept_seconds: float,
    ) -> None:
        """``fresh_seconds`` and ``kept_seconds``: the longest this replica's own entries stay
        fresh and kept (its TTL, and the TTL plus its stale windows); an entry from Redis that
        claims more is refused."""
        self._store = store
        self._tier = tier
        self._keys: KeySpace = tier.keys
        self._backoff = backoff
        self._clock = clock
        self._wait_seconds = wait_seconds
        self._fresh_seconds = fresh_seconds
        self._kept_seconds = kept_seconds
        self._in_flight: KeyedTasks[Fetched] = KeyedTasks()
        self._hints: dict[str, asyncio.Event] = {}
        self._fill_or_lease = tier.script(_FILL_OR_LEASE)
        self._fill = tier.script(_FILL)
        self._give_up = tier.script(_GIVE_UP)
        self._renew = tier.script(_RENEW)
        tier.on_message(self._keys.fill_channel, self._hinted)

    def is_loading(self, key: CacheKey) -> bool:
        """Whether this replica is loading (or waiting for another replica to load) ``key``."""
        return key in self._in_flight

    async def load(self, key: CacheKey, loader: Loader) -> Fetched:
        """The entry for ``key`` from Redis, another replica's load, or this replica's own."""
        waiter = self._in_flight.join(key)
        if waiter is None:
            return await self._in_flight.start(key, self._fetch(key, loader, better_than=None))
        entry, result = await waiter
        return entry, "hit" if result == "hit" else "coalesced"

    def refresh_in_background(self, key: CacheKey, loader: Loader) -> None:
        """Renew ``key`` once across replicas: adopt a newer entry another replica stored, or
        wait for the one refreshing it, or refresh it here; nobody waits for this."""
        if key in self._in_flight:
            return
        current = self._store.get(key)
        better_than = current.fresh_until if current is not None else None
        self._in_flight.start_unwatched(key, self._fetch(key, loader, better_than=better_than))

    async def close(self) -> None:
        """Cancel loads still under way (at shutdown)."""
        await self._in_flight.close()

    async def _fetch(self, key: CacheKey, loader: Loader, *, better_than: float | None) -> Fetched:
        name = self._keys.entry(key)
        keys = [name, self._keys.lease(name), self._keys.backoff(name)]
        token = secrets.token_hex(16)
        deadline = asyncio.get_running_loop().time() + self._wait_seconds
        waited = False
        while True:
            floor = self._clock.now() if better_than is None else better_than
            try:
                reply = await self._tier.run(
                    "fill_or_lease",
                    partial(self._fill_or_lease, keys=keys, args=[repr(floor), token, int(LEASE_SECONDS * 1000)]),
                )
            except SharedUnavailable:
                return await self._load_here(key, loader), "miss"
            verdict = reply[0]
            if verdict == b"entry":
                entry = self._adopt(key, reply[1])
                if entry is None:  # unreadable or out of bounds: take the lease, and the fill replaces it
                    better_than = IGNORE_STORED
                    continue
                return entry, "coalesced" if waited else "hit"
            if verdict == b"backoff":
                raise self._backoff.learn(key, reply[1].decode(), int(reply[2]) / 1000)
            if verdict == b"lease":
                return await self._load_holding(key, keys, token, loader), "miss"
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise UpstreamTimeout("another replica's load of this resource did not finish in time")
            await self._await_hint(name, min(POLL_SECONDS, remaining))
            waited = True

    def _adopt(self, key: CacheKey, data: bytes) -> CacheEntry | None:
        """The entry Redis held, into L1; ``None`` if this replica would never have stored it:
        not an entry in this build's format, or times past what its own entries get (fetched
        later than its clock allows for, fresh or kept longer than its TTL and stale windows: a
        buggy build or a hand-written value would otherwise be served, and told to browsers as
        ``max-age``, for as long as it claims)."""
        try:
            entry = decode_entry(data)
        except ValueError:
            return None
        latest = self._clock.now() + CLOCK_SKEW_SECONDS
        if not (
            entry.fetched_at <= latest
            and entry.fresh_until <= latest + self._fresh_seconds
            and entry.keep_until <= latest + self._kept_seconds
        ):
            return None
        self._store.put(key, entry)
        return entry

    async def _load_here(self, key: CacheKey, loader: Loader) -> CacheEntry:
        entry = await loader()
        self._store.put(key, entry)
        return entry

    async def _load_holding(self, key: CacheKey, keys: list[str], token: str, loader: Loader) -> CacheEntry:
        renewing = asyncio.ensure_future(self._keep_lease(keys[1], token))
        try:
            entry = await loader()
        except BaseException as error:
            blocked = self._backoff.blocked(key) if isinstance(error, UpstreamError) else None
            kind, seconds = (type(blocked).__name__, blocked.retry_after_seconds or 0.0) if blocked else ("", 0.0)
            self._tier.spawn(
                self._tier.run(
                    "give_up",
                    lambda: self._give_up(keys=keys, args=[token, kind, int(seconds * 1000), self._keys.fill_channel]),
                )
            )
            raise
        finally:
            renewing.cancel()
        self._store.put(key, entry)
        kept_until = min(entry.keep_until, entry.fresh_until + KEPT_PAST_FRESH_SECONDS)
        keep_ms = int((kept_until - self._clock.now()) * 1000)
        if keep_ms > 0:
            data = encode_entry(entry)
            self._tier.spawn(
                self._tier.run(
                    "fill",
                    lambda: self._fill(
                        keys=keys, args=[token, repr(entry.fresh_until), data, keep_ms, self._keys.fill_channel]
                    ),
                )
            )
        return entry

    async def _keep_lease(self, lease: str, token: str) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            with contextlib.suppress(SharedUnavailable):
                await self._tier.run(
                    "renew_lease", lambda: self._renew(keys=[lease], args=[token, int(LEASE_SECONDS * 1000)])
                )

    async def _await_hint(self, name: str, seconds: float) -> None:
        event = self._hints.setdefault(name, asyncio.Event())
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            pass
        finally:
            if self._hints.get(name) is event:
                del self._hints[name]

    def _hinted(self, data: bytes) -> None:
        event = self._hints.get(data.decode(errors="replace"))
        if event is not None:
            event.set()
