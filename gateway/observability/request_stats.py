"""The per-request metrics, counted in plain ints and exported at scrape time.

A request only appends its labels and duration to a list; they are counted in batches (at
each scrape, and at each ``settle`` that finds ``FOLD_EVERY`` pending) instead of paying
prometheus_client's label look-up, lock and bucket walk on the request path (that was ~20% of
a cache hit's cost, and counting even plain ints per request was another ~10% on the hit path). The
families exported are the ones a ``Counter``/``Histogram`` would give:
``*_http_requests_total``, ``*_http_request_duration_seconds`` and ``*_cache_requests_total``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "metastudio_gateway"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CACHE_RESULTS = ("hit", "miss", "stale", "coalesced")
FOLD_EVERY = 64


class _Durations:
    """One histogram's state: counts per bucket (the last is +Inf) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0


class RequestStats(Collector):
    """Request counts by (route, method, status, tenant), latency by route, cache results."""

    def __init__(self) -> None:
        self._pending: list[tuple[str, str, str, str, float]] = []
        self._requests: dict[tuple[str, str, str, str], int] = {}
        self._durations: dict[str, _Durations] = {}
        self._cache = dict.fromkeys(CACHE_RESULTS, 0)

    def request(self, route: str, method: str, status: str, tenant: str, seconds: float) -> None:
        """Count one answered request (folded in by the next ``settle`` or scrape)."""
        self._pending.append((route, method, status, tenant, seconds))

    def settle(self) -> None:
        """Fold in what is pending if a batch is full."""
        if len(self._pending) >= FOLD_EVERY:
            self.fold()

    def fold(self) -> None:
        """Fold in what is pending."""
        pending, self._pending = self._pending, []
        requests, durations = self._requests, self._durations
        for route, method, status, tenant, seconds in pending:
            key = (route, method, status, tenant)
            requests[key] = requests.get(key, 0) + 1
            state = durations.get(route)
            if state is None:
                state = durations[route] = _Durations()
            state.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
            state.total += seconds

    def cache_result(self, result: str) -> None:
        """Count one cache look-up by its result."""
        self._cache[result] += 1

    def collect(self) -> Iterator[Metric]:
        self.fold()
        requests = CounterMetricFamily(
            f"{PREFIX}_http_requests",
            "HTTP requests answered, by route template, method, status and tenant.",
            labels=["route", "method", "status", "tenant"],
        )
        for labels, count in list(self._requests.items()):
            requests.add_metric(labels, count)
        yield requests
        durations = HistogramMetricFamily(
            f"{PREFIX}_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            labels=["route"],
        )
        for route, state in list(self._durations.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), state.counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            durations.add_metric([route], buckets, state.total)
        yield durations
        cache = CounterMetricFamily(
            f"{PREFIX}_cache_requests",
            "Cache look-ups by result: hit, miss, stale, coalesced (joined a load under way).",
            labels=["result"],
        )
        for result, count in self._cache.items():
            cache.add_metric([result], count)
        yield cache
