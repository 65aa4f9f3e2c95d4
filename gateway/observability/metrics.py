"""Every Prometheus metric the gateway exports, built on an injected registry.

Label values stay bounded: route templates (never raw paths), tenant ids from config (or
``anonymous``), HTTP status codes, and fixed outcome/reason words.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway import __version__
from gateway.observability.request_stats import LATENCY_BUCKETS, PREFIX, RequestStats

COVER_REFRESH_REASONS = ("cover_request", "cover_expiring")
SHARED_TIER_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    """The gateway's metrics, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = RequestStats()
        registry.register(self.requests)
        self.upstream_requests = Counter(
            f"{PREFIX}_upstream_requests",
            "Upstream attempts by outcome: the HTTP status, timeout or connection_error.",
            ["outcome"],
            registry=registry,
        )
        self.upstream_duration = Histogram(
            f"{PREFIX}_upstream_request_duration_seconds",
            "Time of one upstream attempt.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.cache_entries = Gauge(f"{PREFIX}_cache_entries", "Entries in the response cache.", registry=registry)
        self.cache_bytes = Gauge(
            f"{PREFIX}_cache_bytes",
            "Bytes held by the response cache, as its bound counts them.",
            registry=registry,
        )
        self.cover_refreshes = Counter(
            f"{PREFIX}_cover_refreshes",
            "Upstream re-fetches made to renew cover URLs, by reason.",
            ["reason"],
            registry=registry,
        )
        self.cover_earliest_expiry = Gauge(
            f"{PREFIX}_cover_earliest_expiry_timestamp_seconds",
            "Earliest expiry (Unix time) of any cover URL the gateway may still serve; 0 when none.",
            registry=registry,
        )
        self.expired_covers_served = Counter(
            f"{PREFIX}_expired_covers_served",
            "Cover URLs served that were expired or inside the refresh margin (must stay 0).",
            registry=registry,
        )
        self.foreign_jobs_dropped = Counter(
            f"{PREFIX}_foreign_jobs_dropped",
            "Jobs the upstream returned for a tenant that are not its app user's, left out (must stay 0:"
            " the upstream did not limit the list by X-App-UserId).",
            ["tenant"],
            registry=registry,
        )
        self.credential_reloads = Counter(
            f"{PREFIX}_credential_reloads",
            "Credential re-reads and forced renewals, by trigger: file_changed or upstream_auth_failure.",
            ["trigger"],
            registry=registry,
        )
        self.credential_refreshes = Counter(
            f"{PREFIX}_credential_refreshes",
            "Fetches of temporary cloud credentials or IAM tokens, by source and result (success, failure).",
            ["source", "result"],
            registry=registry,
        )
        self.circuit_state = Gauge(
            f"{PREFIX}_circuit_state",
            "Upstream circuit breaker per tenant: 0 closed, 1 half-open, 2 open.",
            ["tenant"],
            registry=registry,
        )
        self.connections_turned_away = Counter(
            f"{PREFIX}_connections_turned_away",
            "Connections closed as soon as they were made: [server] max_connections were open, none idle.",
            registry=registry,
        )
        self.build_info = Gauge(
            f"{PREFIX}_build_info",
            "Build information; the value is always 1.",
            ["version"],
            registry=registry,
        )
        self.build_info.labels(version=__version__).set(1)
        self.fast_path_enabled = Gauge(
            f"{PREFIX}_fast_path_enabled",
            "1 when connections answer plain cache hits themselves; 0 when every request takes the "
            "handler chain ([server] fast_hit_path = false, or an aiohttp internal it needs is missing).",
            registry=registry,
        )
        self.shared_tier_up = Gauge(
            f"{PREFIX}_shared_tier_up",
            "1 while this replica shares cache, single-flight, backoff and rate limits through Redis; 0 while it"
            " acts on its own (Redis down, refusing or too slow, or no [shared] redis_url).",
            registry=registry,
        )
        self.shared_tier_operations = Counter(
            f"{PREFIX}_shared_tier_operations",
            "Redis operations of the shared tier by operation and result: ok, timeout, error, or skipped"
            " (not tried while the tier is down).",
            ["operation", "result"],
            registry=registry,
        )
        self.shared_tier_duration = Histogram(
            f"{PREFIX}_shared_tier_operation_duration_seconds",
            "Time of one Redis operation of the shared tier (tried ones), by operation.",
            ["operation"],
            buckets=SHARED_TIER_BUCKETS,
            registry=registry,
        )
        self.jwks_fetches = Counter(
            f"{PREFIX}_jwks_fetches",
            "Fetches of a JWT issuer's signing keys, by issuer name and result: ok, error (network, timeout),"
            " bad_status, garbage (not a JWKS, or no usable key: the keys held are kept).",
            ["issuer", "result"],
            registry=registry,
        )
        self.jwks_age = Gauge(
            f"{PREFIX}_jwks_age_seconds",
            "Age of the signing keys held for a JWT issuer (+Inf before the first good fetch).",
            ["issuer"],
            registry=registry,
        )
        self.jwt_validations = Counter(
            f"{PREFIX}_jwt_validations",
            "End-user JWTs checked (verified-token cache hits are not counted), by issuer name (unknown: none"
            " matched) and result: ok, or the fixed reason of a refusal (expired, bad_signature, no_tenant...).",
            ["issuer", "result"],
            registry=registry,
        )
        # Known label values start at 0, so rate() and absent() work from the first scrape.
        for reason in COVER_REFRESH_REASONS:
            self.cover_refreshes.labels(reason=reason)
        for trigger in ("file_changed", "upstream_auth_failure"):
            self.credential_reloads.labels(trigger=trigger)

    def watch_credential_expiry(self, expiry: Callable[[], float]) -> None:
        """Export ``credential_expiry_timestamp_seconds`` read from ``expiry`` (only credentials that
        expire call this: the metric is absent for static keys)."""
        gauge = Gauge(
            f"{PREFIX}_credential_expiry_timestamp_seconds",
            "When the cloud credentials (or IAM token) held now expire, Unix time; 0 while none are held.",
            registry=self.registry,
        )
        gauge.set_function(expiry)
