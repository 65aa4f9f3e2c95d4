"""Why a background re-fetch ran, as ``metastudio_gateway_cover_refreshes_total`` tells it: a
refresh counts as ``cover_expiring`` only when a cover link inside the entry bounded its life."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.api.conftest import ACME, LONG_IMAGE_LINKS, Gateway, GatewayFactory

pytestmark = pytest.mark.asyncio
HOUR = 3600.0
REFRESHES = "metastudio_gateway_cover_refreshes_total"


async def _jobs_with_covers(gateway: Gateway) -> list[dict[str, str]]:
    response = await gateway.client.get("/v1/training-jobs?limit=100", headers=ACME)
    assert response.status == 200
    jobs = [job for job in (await response.json())["jobs"] if "cover_image_url" in job]
    assert jobs, "the simulator's jobs carry covers"
    return jobs


async def _until_refreshed(gateway: Gateway, calls: int) -> None:
    for _ in range(100):  # bounded wait for the background re-fetch to reach the upstream
        if gateway.upstream_calls == calls:
            return
        await asyncio.sleep(0.01)
    assert gateway.upstream_calls == calls


async def test_a_refresh_bounded_by_image_links_is_not_counted_as_cover_expiring(
    make_gateway: GatewayFactory,
) -> None:
    """A TTL longer than the cover-image links' life: the links bound the entry, the covers
    (24 h) do not, so the refresh ahead of the links' end is no ``cover_expiring``."""
    gateway = await make_gateway(ttl_seconds=2 * HOUR, margin_seconds=HOUR)  # image links: 900 s
    jobs = await _jobs_with_covers(gateway)
    link_expiry = min(int(dict(parse_qsl(urlsplit(job["cover_image_url"]).query))["exp"]) for job in jobs)
    step = 900 // 10  # the links' quantisation step: the body is served until one step is left
    gateway.clock.set(link_expiry - step - 1)  # in the last tenth of the entry's fresh life
    assert (await gateway.client.get("/v1/training-jobs?limit=100", headers=ACME)).status == 200
    await _until_refreshed(gateway, 2)
    assert gateway.metric(REFRESHES, reason="cover_expiring") == 0


async def test_a_refresh_bounded_by_a_cover_link_is_counted_as_cover_expiring(make_gateway: GatewayFactory) -> None:
    """A TTL longer than the covers' life: the refresh ahead of the first cover's margin is ``cover_expiring``."""
    gateway = await make_gateway(ttl_seconds=48 * HOUR, margin_seconds=HOUR, covers=LONG_IMAGE_LINKS)
    await _jobs_with_covers(gateway)
    gateway.clock.advance(22.9 * HOUR)  # the covers live 24 h: the entry lives 23 h
    assert (await gateway.client.get("/v1/training-jobs?limit=100", headers=ACME)).status == 200
    await _until_refreshed(gateway, 2)
    assert gateway.metric(REFRESHES, reason="cover_expiring") == 1
