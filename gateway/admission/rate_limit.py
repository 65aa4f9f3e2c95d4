"""Per-tenant token buckets: ``rate`` tokens a second, up to ``burst`` saved.

Hand-written rather than the ``limits`` package: ``limits`` offers fixed, moving and
sliding-window counters, not a token bucket with a burst, and this check sits on every
request's path, where one dict look-up and a few float operations are all we want to pay.
A shared tier (Redis) would be the reason to switch; state here is per process.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.clock import Clock
from gateway.config.settings import RateLimitSettings
from gateway.tenant import Tenant


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
        now = self._clock.now()
        bucket = self._buckets.get(tenant_id)
        if bucket is None:
            bucket = self._buckets[tenant_id] = _Bucket(tokens=limit.burst, updated_at=now)
        bucket.tokens = min(limit.burst, bucket.tokens + max(0.0, now - bucket.updated_at) * limit.per_second)
        bucket.updated_at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0
        return max(1, math.ceil((1 - bucket.tokens) / limit.per_second))
