"""Upstream trouble as callers see it: stale answers, fast failures, bounded upstream load, rate limits."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from gateway.config.settings import CircuitBreakerSettings, RateLimitSettings
from gateway.simulator.faults import Fault
from gateway.tenant import Tenant
from tests.api.conftest import ACME, GLOBEX, LONG_IMAGE_LINKS, TENANTS, Gateway, GatewayFactory

pytestmark = pytest.mark.asyncio
HOUR = 3600.0


async def _status(gateway: Gateway, headers: dict[str, str] = ACME, path: str = "/v1/training-jobs") -> int:
    return (await gateway.client.get(path, headers=headers)).status


async def test_stale_if_error_serves_the_last_good_list_with_age(make_gateway: GatewayFactory) -> None:
    """After expiry, an upstream failure gives the last good list (X-Cache STALE, Age), not an error."""
    gateway = await make_gateway(ttl_seconds=60)
    good = await (await gateway.client.get("/v1/training-jobs", headers=ACME)).read()
    gateway.clock.advance(600)
    gateway.simulator.state.fail_next.extend([500] * 3)
    response = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert response.status == 200
    assert response.headers["X-Cache"] == "STALE"
    assert response.headers["Age"] == "600"
    assert await response.read() == good
    assert gateway.metric("metastudio_gateway_cache_requests_total", result="stale") == 1


async def test_stale_if_error_is_answered_after_one_failed_attempt_not_the_retries_waits(
    make_gateway: GatewayFactory,
) -> None:
    """With a stale copy to fall back on, the upstream answering 429 and Retry-After 3 (within the
    cap, so a caller with nothing cached would wait for a retry): the copy comes back at once,
    after one upstream call, not after the retries' waits; the key backs off for the 3 s asked."""
    gateway = await make_gateway(ttl_seconds=60, upstream={"retry_after_cap_seconds": 5.0})
    good = await (await gateway.client.get("/v1/training-jobs", headers=ACME)).read()
    gateway.clock.advance(600)
    gateway.simulator.state.faults.append(Fault("status", status=429, retry_after=3))
    started = asyncio.get_running_loop().time()
    response = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert asyncio.get_running_loop().time() - started < 2  # it was 6 s: two waits of 3 s
    assert (response.status, response.headers["X-Cache"], await response.read()) == (200, "STALE", good)
    assert gateway.upstream_calls == 2  # the first fill, and one attempt
    again = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert (again.headers["X-Cache"], gateway.upstream_calls) == ("STALE", 2)  # backing off: no call


async def test_a_stale_copy_is_not_held_behind_the_retries_of_a_refresh_in_the_background(
    make_gateway: GatewayFactory,
) -> None:
    """A request just past the TTL is answered STALE at once and starts a refresh; the upstream
    answers it 429 with Retry-After 3. A request past the stale-while-revalidate window, with the
    same stale copy, joins that refresh: it gets the copy at once, as one with nothing in flight
    does. The refresh retried (it waited the 3 s), and so the caller waited 5.7 s for its copy."""
    gateway = await make_gateway(ttl_seconds=60, upstream={"retry_after_cap_seconds": 5.0})
    good = await (await gateway.client.get("/v1/training-jobs", headers=ACME)).read()
    gateway.clock.advance(65)  # within stale_while_revalidate (10 s)
    gateway.simulator.state.faults.append(Fault("status", status=429, retry_after=3))
    first = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert first.headers["X-Cache"] == "STALE"
    await asyncio.sleep(0.3)  # the refresh has had its 429
    gateway.clock.advance(10)  # past the stale-while-revalidate window: stale-if-error
    started = asyncio.get_running_loop().time()
    second = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert asyncio.get_running_loop().time() - started < 2
    assert (second.status, second.headers["X-Cache"], await second.read()) == (200, "STALE", good)


async def test_stale_if_error_ends_after_its_window(make_gateway: GatewayFactory) -> None:
    """Past stale_if_error_seconds the failure reaches the caller."""
    gateway = await make_gateway(ttl_seconds=60, cache={"stale_if_error_seconds": 300})
    await gateway.client.get("/v1/training-jobs", headers=ACME)
    gateway.clock.advance(400)
    gateway.simulator.state.fail_next.extend([500] * 3)
    assert await _status(gateway) == 503


async def test_stale_list_never_carries_a_cover_inside_the_margin(make_gateway: GatewayFactory) -> None:
    """A stale list is dropped once its first cover would be inside the margin: 503 rather than a dying link."""
    # Cover-image links that outlive the test: only cover_download_url bounds the entry here.
    gateway = await make_gateway(
        ttl_seconds=60, margin_seconds=HOUR, cache={"stale_if_error_seconds": 48 * HOUR}, covers=LONG_IMAGE_LINKS
    )
    await gateway.client.get("/v1/training-jobs?limit=50", headers=ACME)
    gateway.clock.advance(22 * HOUR)
    gateway.simulator.state.fail_next.extend([500] * 3)
    stale = await gateway.client.get("/v1/training-jobs?limit=50", headers=ACME)
    assert stale.headers["X-Cache"] == "STALE"
    gateway.clock.advance(1.5 * HOUR)
    gateway.simulator.state.fail_next.extend([500] * 3)
    assert await _status(gateway, path="/v1/training-jobs?limit=50") == 503
    assert gateway.metric("metastudio_gateway_expired_covers_served_total") == 0


async def test_failing_key_is_not_hammered(gateway: Gateway) -> None:
    """After a failed load, further requests for that key inside its backoff fail fast without
    upstream calls; each 503 says when to come back (Retry-After: the backoff left, rounded up:
    1 s after the first failure, 2 s after the second, 1.5 s left of it said as 2)."""
    gateway.simulator.state.fail_next.extend([500] * 3)
    failed = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert (failed.status, failed.headers["Retry-After"]) == (503, "1")  # the key's backoff: 1 s
    gateway.clock.advance(1)
    gateway.simulator.state.fail_next.extend([500] * 3)
    failed = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert (failed.status, failed.headers["Retry-After"]) == (503, "2")  # doubled
    calls = gateway.upstream_calls
    gateway.clock.advance(0.5)
    for _ in range(10):
        blocked = await gateway.client.get("/v1/training-jobs", headers=ACME)
        assert (blocked.status, blocked.headers["Retry-After"]) == (503, "2")
    assert gateway.upstream_calls == calls
    gateway.simulator.state.fail_next.clear()  # the retry budget may have left some unused
    gateway.clock.advance(2)
    assert await _status(gateway) == 200


async def test_circuit_opens_and_fails_fast_then_probes(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Failures open the tenant's circuit: 503 at once without upstream calls, saying when it
    will try again (Retry-After); after open_seconds a probe closes it. The log says when it
    opened and why, and when it closed (nothing did)."""
    caplog.set_level(logging.INFO, logger="gateway.upstream.breaker")
    breaker = CircuitBreakerSettings(window_seconds=30, min_calls=4, failure_ratio=0.5, open_seconds=10)
    gateway = await make_gateway(max_attempts=1, circuit_breaker=breaker)
    gateway.simulator.state.fail_next.extend([500] * 4)
    for offset in range(4):  # distinct keys: each goes upstream once and fails
        assert await _status(gateway, path=f"/v1/training-jobs?offset={offset}") == 503
    assert gateway.metric("metastudio_gateway_circuit_state", tenant="acme") == 2
    calls = gateway.upstream_calls
    gateway.clock.advance(3)
    refused = await gateway.client.get("/v1/training-jobs?offset=99", headers=ACME)
    assert (refused.status, refused.headers["Retry-After"]) == (503, "7")  # the circuit's 10 s, 3 gone
    assert gateway.upstream_calls == calls
    assert gateway.metric("metastudio_gateway_circuit_state", tenant="globex") == 0
    assert await _status(gateway, GLOBEX) == 200
    gateway.clock.advance(8)
    assert gateway.metric("metastudio_gateway_circuit_state", tenant="acme") == 1
    assert await _status(gateway, path="/v1/training-jobs?offset=98") == 200
    assert gateway.metric("metastudio_gateway_circuit_state", tenant="acme") == 0
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "gateway.upstream.breaker"]
    assert [level for level, _ in said] == [logging.WARNING, logging.INFO]  # opened, closed: once each
    assert "app user acme-web are paused for 10 s" in said[0][1] and "4 of 4 calls failed" in said[0][1]
    assert "app user acme-web flow again" in said[1][1]


async def test_open_circuit_still_serves_stale(make_gateway: GatewayFactory) -> None:
    """While the circuit is open, a cached list past its TTL is still served (STALE)."""
    breaker = CircuitBreakerSettings(window_seconds=30, min_calls=2, failure_ratio=0.5, open_seconds=60)
    gateway = await make_gateway(ttl_seconds=5, max_attempts=1, circuit_breaker=breaker)
    await gateway.client.get("/v1/training-jobs", headers=ACME)
    gateway.simulator.state.fail_next.extend([503] * 2)
    for offset in (1, 2):
        await gateway.client.get(f"/v1/training-jobs?offset={offset}", headers=ACME)
    gateway.clock.advance(30)
    response = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert response.headers["X-Cache"] == "STALE"


async def test_retries_stay_within_the_budget_under_sustained_failure(make_gateway: GatewayFactory) -> None:
    """With every upstream call failing, retries add at most ~20% (plus a small floor) to upstream calls."""
    gateway = await make_gateway(
        max_attempts=3, circuit_breaker=CircuitBreakerSettings(min_calls=10_000), upstream={"retry_budget_ratio": 0.2}
    )
    gateway.simulator.state.fail_next.extend([500] * 1000)
    requests = 50
    for offset in range(requests):
        assert await _status(gateway, path=f"/v1/training-jobs?offset={offset}") == 503
    assert gateway.upstream_calls <= requests * 1.2 + 3
    assert gateway.upstream_calls > requests


async def test_retry_after_from_a_429_is_honoured(make_gateway: GatewayFactory) -> None:
    """A 429 is retried (after its Retry-After, capped) and the caller gets 200."""
    gateway = await make_gateway(upstream={"retry_after_cap_seconds": 0.05})
    gateway.simulator.state.fail_next.append(429)
    assert await _status(gateway) == 200
    assert [r.status for r in gateway.simulator.state.request_log] == [429, 200]


async def test_retry_after_as_an_http_date_is_honoured(make_gateway: GatewayFactory) -> None:
    """A Retry-After may be an HTTP date (RFC 9110 10.2.3): one 3 s ahead when the caller's
    deadline is 1 s means no retry, a 503 at once saying to come back in 3 s, and one upstream
    call. (It was read as no Retry-After: retried at once, against the upstream's word.)"""
    gateway = await make_gateway(timeout_seconds=1.0, upstream={"retry_after_cap_seconds": 5.0})
    when = format_datetime(datetime.fromtimestamp(gateway.clock.now() + 3, UTC), usegmt=True)
    gateway.simulator.state.faults.append(Fault("status", status=429, retry_after=when, remaining=1))
    response = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert (response.status, response.headers["Retry-After"], gateway.upstream_calls) == (503, "3", 1)


async def test_a_retry_after_beyond_the_cap_is_not_cut_short(make_gateway: GatewayFactory) -> None:
    """The upstream asks for 60 s and the gateway waits at most 5 s within a request: it does not
    call again after 5 s (against the upstream's word) but answers 503 at once, saying 60 s, and
    the key is not asked upstream again before them (the doubling's 30 s cap does not cut them)."""
    gateway = await make_gateway(timeout_seconds=10.0, upstream={"retry_after_cap_seconds": 5.0})
    gateway.simulator.state.faults.append(Fault("status", status=429, retry_after=60, remaining=1))
    started = asyncio.get_running_loop().time()
    response = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert asyncio.get_running_loop().time() - started < 2
    assert (response.status, response.headers["Retry-After"], gateway.upstream_calls) == (503, "60", 1)
    gateway.clock.advance(45)
    blocked = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert (blocked.status, blocked.headers["Retry-After"], gateway.upstream_calls) == (503, "15", 1)
    gateway.clock.advance(15)
    assert await _status(gateway) == 200


async def test_rate_limit_gives_429_with_retry_after_and_spares_other_tenants(make_gateway: GatewayFactory) -> None:
    """Past its burst a tenant gets 429 rate_limited with Retry-After; another tenant is unaffected."""
    limited = (Tenant(TENANTS[0].id, TENANTS[0].app_user_id, TENANTS[0].api_key_sha256, 1.0, 3), TENANTS[1])
    gateway = await make_gateway(tenants=limited, rate_limit=RateLimitSettings(requests_per_second=0))
    statuses = [await _status(gateway) for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert (await refused.json())["error"]["code"] == "rate_limited"
    assert [await _status(gateway, GLOBEX) for _ in range(10)] == [200] * 10
    gateway.clock.advance(1)
    assert await _status(gateway) == 200


async def test_default_rate_limit_applies_to_every_tenant(make_gateway: GatewayFactory) -> None:
    """[rate_limit] sets a default for tenants without their own."""
    gateway = await make_gateway(rate_limit=RateLimitSettings(requests_per_second=1, burst=2))
    assert [await _status(gateway, GLOBEX) for _ in range(3)] == [200, 200, 429]


async def test_deadline_covers_retries(make_gateway: GatewayFactory) -> None:
    """A slow upstream and retries together never hold a caller past timeout_seconds: 504."""
    gateway = await make_gateway(timeout_seconds=0.3, max_attempts=5, upstream={"read_timeout_seconds": 0.2})
    gateway.simulator.state.response_delay_seconds = 1.0
    started = asyncio.get_running_loop().time()
    status = await _status(gateway)
    elapsed = asyncio.get_running_loop().time() - started
    assert status in (503, 504)
    assert elapsed < 2.0  # generous bound: the point is "not 5 x 1 s"


async def test_a_retry_whose_wait_would_reach_the_deadline_is_not_made(make_gateway: GatewayFactory) -> None:
    """A 429 asking for 3 s when the caller's deadline is 1 s: no retry, the caller gets 503
    unavailable (not a 504 after waiting out the deadline), and the upstream gets one call."""
    gateway = await make_gateway(timeout_seconds=1.0, upstream={"retry_after_cap_seconds": 5.0})
    gateway.simulator.state.faults.append(Fault("status", status=429, retry_after=3, remaining=1))
    response = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "upstream_unavailable"
    assert gateway.upstream_calls == 1
