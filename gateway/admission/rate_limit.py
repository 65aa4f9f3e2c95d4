"""Per-tenant rate limits: ``rate`` tokens a second, up to ``burst`` saved.

``RateLimiter`` is the seam ``admission.gate`` calls on every request, synchronously. Two
implementations: ``TenantRateLimiter``, token buckets in this process, and the shared tier's
limiter (``gateway.shared.rate_limit``), which leases small batches of tokens from one bucket in
Redis into a local ``Allowance`` per tenant (the bookkeeping here, pure), so that a request still
costs one dict look-up and a few operations, never a round trip.

Hand-written rather than the ``limits`` package: ``limits`` offers fixed, moving and
sliding-window counters, not a token bucket with a burst; its Redis storage makes a round trip
per request, which the admission rule forbids (the fast path decides inside ``data_received``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.clock import Clock
from gateway.config.settings import RateLimitSettings
from gateway.tenant import Tenant

LEASE_RATE_SECONDS = 0.05
"""A lease asks for about this long of the tenant's rate..."""
LEASE_BURST_SHARE = 0.1
"""...but never more than this share of the tenant's burst divided among the replicas."""
COLD_AFTER_SECONDS = 10.0
"""An allowance with no lease for this long is cold: its first requests pass on credit."""
LEASE_SLACK_SECONDS = 0.1
"""The time a lease for refused callers is given to be answered (a Redis round trip, under load:
the shared tier's default operation timeout, past which it has failed anyway): it is asked this
long before the last of them was told to come back, and a caller is told to wait at least this
long past the bucket's next token."""
TOKEN_LIFETIME_SECONDS = 1.0 + LEASE_SLACK_SECONDS
"""Leased tokens not used within this are dropped (a replica must not sit on old tokens). A
second and the slack: the tokens leased for refused callers outlive their return by a second,
for a caller that comes back late."""


class RateLimiter(Protocol):
    """The rate-limit decision, synchronous: it answers from memory."""

    def retry_after(self, tenant_id: str) -> int:
        """Take one token; 0 when allowed, else the whole seconds to wait before one is there."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Sustained requests per second and the burst allowed on top."""

    per_second: float
    burst: float


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_at: float


def tenant_limits(tenants: Iterable[Tenant], default: RateLimitSettings) -> dict[str, RateLimit]:
    """Each tenant's own limit, or the default; tenants whose rate is 0 are left unlimited."""
    limits = {}
    for tenant in tenants:
        rate = default.requests_per_second if tenant.requests_per_second is None else tenant.requests_per_second
        burst = default.burst if tenant.burst is None else tenant.burst
        if rate > 0:
            limits[tenant.id] = RateLimit(per_second=rate, burst=burst)
    return limits


class TenantRateLimiter:
    """Token buckets keyed by tenant id; tenants without a limit are not limited."""

    def __init__(self, limits: Mapping[str, RateLimit], clock: Clock) -> None:
        self._limits = dict(limits)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def retry_after(self, tenant_id: str) -> int:
        """Take one token; 0 when allowed, else the whole seconds to wait before one is there."""
        limit = self._limits.get(tenant_id)
        if limit is None:
            return 0
        now = self._clock.monotonic()
        bucket = self._buckets.get(tenant_id)
        if bucket is None:
            bucket = self._buckets[tenant_id] = _Bucket(tokens=limit.burst, updated_at=now)
        bucket.tokens = min(limit.burst, bucket.tokens + max(0.0, now - bucket.updated_at) * limit.per_second)
        bucket.updated_at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0
        return max(1, math.ceil((1 - bucket.tokens) / limit.per_second))


def credit_allowed(limit: RateLimit, replicas: int) -> int:
    """Requests a replica may admit ahead of its lease while the bucket has plenty: its share of
    the burst (from a full bucket, every replica's credit together is the burst)."""
    return max(1, math.floor(limit.burst / max(1, replicas)))


def lease_size(limit: RateLimit, replicas: int) -> int:
    """Tokens one replica leases at a time: about ``LEASE_RATE_SECONDS`` of the rate, at most a
    tenth of the burst's share per replica (tokens held by replicas idle are lost to the busy
    ones), at least one."""
    by_rate = math.ceil(limit.per_second * LEASE_RATE_SECONDS)
    by_burst = math.floor(limit.burst * LEASE_BURST_SHARE / max(1, replicas))
    return max(1, min(by_rate, by_burst))


@dataclass(slots=True)
class Allowance:
    """The tokens one replica holds for one tenant, leased from a shared bucket. Pure bookkeeping:
    ``take`` decides a request, ``want`` says whether to lease and how many, ``leased`` books the
    answer.

    Once the shared bucket says no, ``denied_until`` holds when its next token is due, and until
    then this replica neither admits the tenant nor asks Redis; a caller refused meanwhile is told
    to come back then (plus ``LEASE_SLACK_SECONDS``). Every refused caller's return is noted
    (``promised_until``), and ``lease_due`` says when to lease for them, so that a token is held
    when they come back. While the bucket has plenty (the
    last lease was granted in full, or there was none for ``COLD_AFTER_SECONDS``), an allowance
    that runs dry admits up to ``credit`` requests (the replica's share of the burst) while its
    lease is under way, and the lease pays that debt first: a burst within the limit is not
    refused for want of a round trip. Near the limit (a lease granted in part or not at all) there
    is no credit, so replicas admit no more than the bucket grants."""

    tokens: int = 0
    debt: int = 0
    expires_at: float = 0.0
    denied_until: float = 0.0
    last_lease_at: float = -math.inf
    plenty: bool = True
    leasing: bool = False
    promised_until: float = 0.0
    """When the last caller refused was told to come back."""
    lease_set_for: float | None = None
    """When a lease for the refused callers is set to be asked (one at a time)."""

    def take(self, now: float, credit: int) -> int:
        """Take a token (or, with plenty in the bucket, up to ``credit`` on credit): 0 to pass,
        else whole seconds to wait."""
        if self.tokens > 0 and now < self.expires_at:
            self.tokens -= 1
            return 0
        self.tokens = 0
        if now < self.denied_until:
            wait = max(1, math.ceil(self.denied_until + LEASE_SLACK_SECONDS - now))
        elif (self.plenty or now - self.last_lease_at >= COLD_AFTER_SECONDS) and self.debt < credit:
            self.debt += 1
            return 0
        else:
            wait = 1
        self.promised_until = max(self.promised_until, now + wait)
        return wait

    def want(self, now: float, size: int) -> int:
        """Tokens to lease now (0: none): when the held ones run low or there is a debt, unless a
        lease is under way or the bucket said no until later."""
        if self.leasing or now < self.denied_until:
            return 0
        held = self.tokens if now < self.expires_at else 0
        if held > size // 2 and not self.debt:
            return 0
        return size + self.debt

    def lease_due(self, now: float) -> float | None:
        """When to lease for the refused callers still to come back: ``LEASE_SLACK_SECONDS``
        before the last of them does, not before the bucket's next token. ``None``: one is set
        already, none is to come back, or tokens are held that will still be there for them.
        (Leased at the next token's due time, and only for callers refused once the bucket had
        said no, a caller refused while a lease was under way had nothing leased for it, and
        tokens living a second from the due time could be gone when one came back a little late:
        refused again, Retry-After 1.)"""
        if self.lease_set_for is not None or now >= self.promised_until or self.holds_for_refused():
            return None
        due = max(self.denied_until, self.promised_until - LEASE_SLACK_SECONDS)
        return due if due < self.promised_until else None

    def holds_for_refused(self) -> bool:
        """Whether tokens are held that will still be there when the last refused caller comes back."""
        return self.tokens > 0 and self.expires_at > self.promised_until

    def leased(self, now: float, asked: int, granted: int, next_token_in: float) -> None:
        """Book a lease's answer: ``granted`` of ``asked`` tokens, the next due in ``next_token_in`` s."""
        self.leasing = False
        self.last_lease_at = now
        self.plenty = granted == asked
        paid = min(granted, self.debt)
        self.debt -= paid
        held = self.tokens if now < self.expires_at else 0
        self.tokens = held + granted - paid
        self.expires_at = now + TOKEN_LIFETIME_SECONDS
        if granted < asked and self.tokens == 0:
            self.denied_until = now + next_token_in
