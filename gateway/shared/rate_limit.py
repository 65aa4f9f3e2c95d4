"""One rate limit per tenant across replicas: a token bucket in Redis, leased out in small batches.

The bucket is one Lua script on Redis's own clock (``TIME``), so replicas' clocks do not matter:
it refills at the tenant's rate up to its burst and grants up to the tokens asked. Each replica
keeps a local ``Allowance`` per tenant (``admission.rate_limit``) and decides every request from
it synchronously; a lease is asked in the background when the allowance runs low. When the
bucket grants nothing, the allowance knows when the next token is due and makes no Redis call
before then, so a tenant over its limit costs no Redis traffic but one lease when that token is
due, made for the callers it refused meanwhile (told to come back then).

While Redis is unavailable each replica limits on its own at the tenant's limit divided by the
number of replicas it last saw (``RedisTier.replicas_seen``; ``[shared] expected_replicas`` until
it has seen any), so the sum stays near the limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from gateway.admission.rate_limit import Allowance, RateLimit, TenantRateLimiter, credit_allowed, lease_size
from gateway.clock import Clock
from gateway.shared.tier import RedisTier

_TAKE = """
-- KEYS: bucket. ARGV: rate per second, burst, tokens asked.
-- Returns {granted, microseconds until the next token when fewer were granted than asked}.
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local rate, burst, asked = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at_us')
local tokens = tonumber(state[1]) or burst
local at_us = tonumber(state[2]) or now_us
tokens = math.min(burst, tokens + math.max(0, now_us - at_us) * rate / 1000000)
local granted = math.min(asked, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at_us', string.format('%.0f', now_us))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
local wait_us = 0
if granted < asked then wait_us = math.ceil((1 - tokens) / rate * 1000000) end
return {granted, wait_us}
"""


class SharedRateLimiter:
    """A ``RateLimiter`` over per-tenant buckets in Redis, fed into local allowances."""

    def __init__(self, limits: Mapping[str, RateLimit], tier: RedisTier, clock: Clock) -> None:
        self._limits = dict(limits)
        self._tier = tier
        self._clock = clock
        self._allowances: dict[str, Allowance] = {}
        self._terms_by_tenant: dict[str, tuple[int, int, int]] = {}
        self._take = tier.script(_TAKE)
        self._local_replicas = 0
        self._local = TenantRateLimiter({}, clock)

    def retry_after(self, tenant_id: str) -> int:
        """Take one token from this replica's allowance: 0 to pass, else whole seconds to wait."""
        limit = self._limits.get(tenant_id)
        if limit is None:
            return 0
        if not self._tier.up:
            return self._local_share().retry_after(tenant_id)
        allowance = self._allowances.get(tenant_id)
        if allowance is None:
            allowance = self._allowances[tenant_id] = Allowance()
        now = self._clock.monotonic()
        size, credit = self._terms(tenant_id, limit)
        decision = allowance.take(now, credit)
        asked = allowance.want(now, size)
        if asked:
            allowance.leasing = True
            self._tier.spawn(self._lease(tenant_id, limit, allowance, asked))
        elif decision:
            self._lease_for_refused(tenant_id, limit, allowance, now)
        return decision

    def _lease_for_refused(self, tenant_id: str, limit: RateLimit, allowance: Allowance, now: float) -> None:
        """Lease for the callers refused, just before they come back, so that they find a token
        held (a lease asked only when one came back was answered too late for it: refused again,
        at half the rate for a caller that waits as told)."""
        due = allowance.lease_due(now)
        if due is not None:
            allowance.lease_set_for = due
            self._tier.spawn(self._lease_when_due(tenant_id, limit, allowance, due))

    async def _lease_when_due(self, tenant_id: str, limit: RateLimit, allowance: Allowance, due: float) -> None:
        """The lease set for refused callers; leases go on as usual meanwhile, so it is asked only
        if still needed then and none is under way (whose end looks again)."""
        try:
            await asyncio.sleep(max(0.0, due - self._clock.monotonic()))
        finally:
            allowance.lease_set_for = None
        if allowance.leasing or allowance.holds_for_refused():
            return
        allowance.leasing = True
        await self._lease(tenant_id, limit, allowance, self._terms(tenant_id, limit)[0])

    def _terms(self, tenant_id: str, limit: RateLimit) -> tuple[int, int]:
        """The tenant's lease size and credit for the replicas last seen (worked out again only
        when that count changes: this runs on every request)."""
        replicas = self._tier.replicas_seen
        known = self._terms_by_tenant.get(tenant_id)
        if known is None or known[0] != replicas:
            known = self._terms_by_tenant[tenant_id] = (
                replicas,
                lease_size(limit, replicas),
                credit_allowed(limit, replicas),
            )
        return known[1], known[2]

    def _local_share(self) -> TenantRateLimiter:
        """Local buckets at each limit divided by the replicas last seen (rebuilt when that changes)."""
        replicas = self._tier.replicas_seen
        if replicas != self._local_replicas:
            self._local_replicas = replicas
            self._local = TenantRateLimiter(
                {
                    tenant_id: RateLimit(per_second=limit.per_second / replicas, burst=max(1.0, limit.burst / replicas))
                    for tenant_id, limit in self._limits.items()
                },
                self._clock,
            )
        return self._local

    async def _lease(self, tenant_id: str, limit: RateLimit, allowance: Allowance, asked: int) -> None:
        try:
            granted, wait_us = await self._tier.run(
                "rate_lease",
                lambda: self._take(
                    keys=[self._tier.keys.rate(tenant_id)], args=[repr(limit.per_second), repr(limit.burst), asked]
                ),
            )
        finally:
            allowance.leasing = False
        now = self._clock.monotonic()
        allowance.leased(now, asked, int(granted), int(wait_us) / 1_000_000)
        self._lease_for_refused(tenant_id, limit, allowance, now)  # refused while this one was under way
