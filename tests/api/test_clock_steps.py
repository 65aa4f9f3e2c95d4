"""The wall clock steps back an hour (NTP at boot, a VM resumed after suspend): backoffs, the
circuit breaker and the cache's freshness last as long as they would have, not an hour more.
``ManualClock.advance`` with a negative number is such a step: wall time alone moves."""

from __future__ import annotations

import asyncio

import pytest

from gateway.config.settings import CircuitBreakerSettings
from tests.api.conftest import ACME, Gateway, GatewayFactory

pytestmark = pytest.mark.asyncio
STEP = 3600.0
LIST = "/v1/training-jobs?limit=3"


async def _get(gateway: Gateway, path: str = LIST) -> tuple[int, dict[str, str]]:
    async with gateway.client.get(path, headers=ACME) as response:
        await response.read()
        return response.status, dict(response.headers)


async def test_a_failing_key_is_tried_again_when_its_backoff_ends_whatever_the_clock_did(
    make_gateway: GatewayFactory,
) -> None:
    """A key that failed is not asked again during its backoff (30 s at most); the clock steps
    back an hour and 31 s pass: the healed upstream is asked and the caller gets 200."""
    gateway = await make_gateway()
    gateway.simulator.state.fail_next.extend([500] * 3)
    assert (await _get(gateway))[0] == 503
    gateway.clock.advance(-STEP)
    gateway.clock.advance(31)
    assert (await _get(gateway))[0] == 200


async def test_an_open_circuit_probes_after_its_open_time_whatever_the_clock_did(make_gateway: GatewayFactory) -> None:
    """The circuit opens (open for 10 s); the clock steps back an hour and 11 s pass: a probe
    goes out, succeeds, and the caller gets 200."""
    breaker = CircuitBreakerSettings(window_seconds=30, min_calls=4, failure_ratio=0.5, open_seconds=10)
    gateway = await make_gateway(max_attempts=1, circuit_breaker=breaker)
    gateway.simulator.state.fail_next.extend([500] * 4)
    for offset in range(4):
        await _get(gateway, f"/v1/training-jobs?offset={offset}")
    assert gateway.metric("metastudio_gateway_circuit_state", tenant="acme") == 2
    gateway.clock.advance(-STEP)
    gateway.clock.advance(11)
    assert (await _get(gateway, "/v1/training-jobs?offset=50"))[0] == 200


async def test_an_entry_fetched_later_than_the_clock_now_reads_is_served_and_fetched_again(
    make_gateway: GatewayFactory,
) -> None:
    """A page cached for 60 s; the clock steps back an hour: the next caller is served the page
    (never told to keep it longer than its 60 s), and one re-fetch replaces it, instead of the
    page staying fresh for an hour and a minute."""
    gateway = await make_gateway(ttl_seconds=60)
    assert (await _get(gateway))[0] == 200
    gateway.clock.advance(-STEP)
    status, headers = await _get(gateway)
    assert status == 200
    assert int(headers["Cache-Control"].removeprefix("private, max-age=")) <= 60
    for _ in range(200):
        if gateway.upstream_calls == 2:
            break
        await asyncio.sleep(0.01)
    assert gateway.upstream_calls == 2
    status, headers = await _get(gateway)
    assert (status, headers["X-Cache"], gateway.upstream_calls) == (200, "HIT", 2)
