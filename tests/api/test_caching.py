"""Caching as a caller sees it: hits, misses, single-flight, validators and freshness."""

from __future__ import annotations

import asyncio

import pytest
from multidict import CIMultiDict

from tests.api.conftest import ACME, GLOBEX, Gateway, GatewayFactory

pytestmark = pytest.mark.asyncio


async def test_second_identical_request_is_a_hit_without_upstream_call_or_json_encoding(
    gateway: Gateway,
) -> None:
    """A hit makes no upstream request and encodes no JSON: the stored bytes are sent as they are."""
    first = await gateway.client.get("/v1/training-jobs?limit=3", headers=ACME)
    first_body = await first.read()
    calls, encodings = gateway.upstream_calls, len(gateway.encoded)
    second = await gateway.client.get("/v1/training-jobs?limit=3", headers=ACME)
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert await second.read() == first_body
    assert gateway.upstream_calls == calls == 1
    assert len(gateway.encoded) == encodings


async def test_parameter_order_and_spelled_out_defaults_share_an_entry(gateway: Gateway) -> None:
    """?limit=10&offset=0, ?offset=0&limit=10 and no query at all are one cache entry."""
    for query in ("", "?limit=10&offset=0", "?offset=0&limit=10"):
        response = await gateway.client.get(f"/v1/training-jobs{query}", headers=ACME)
        assert response.status == 200
    assert gateway.upstream_calls == 1


async def test_cache_is_per_tenant(gateway: Gateway) -> None:
    """The same query by another tenant is a miss served from that tenant's own upstream request."""
    await gateway.client.get("/v1/training-jobs", headers=ACME)
    response = await gateway.client.get("/v1/training-jobs", headers=GLOBEX)
    assert response.headers["X-Cache"] == "MISS"
    assert [r.app_user_id for r in gateway.simulator.state.request_log] == ["acme-web", "globex-app"]


@pytest.mark.parametrize("per_tenant", [0, 64 * 1024], ids=["no tenant bound", "tenant bound"])
async def test_one_tenants_distinct_queries_do_not_evict_anothers_pages(
    make_gateway: GatewayFactory, per_tenant: int
) -> None:
    """globex asks 400 distinct pages (every offset of its list) in a 256 KiB cache: with
    max_bytes_per_tenant at 64 KiB, acme's page is still a hit; without it (the default, as
    before) globex's pages evict it, and acme's next request waits for the upstream again."""
    gateway = await make_gateway(max_bytes=256 * 1024, cache={"max_bytes_per_tenant": per_tenant})
    await gateway.client.get("/v1/training-jobs?limit=20", headers=ACME)
    for offset in range(400):
        assert (await gateway.client.get(f"/v1/training-jobs?offset={offset}", headers=GLOBEX)).status == 200
    again = await gateway.client.get("/v1/training-jobs?limit=20", headers=ACME)
    assert again.headers["X-Cache"] == ("HIT" if per_tenant else "MISS")


async def test_200_concurrent_cold_requests_make_one_upstream_request(gateway: Gateway) -> None:
    """Single-flight: 200 identical concurrent misses share exactly one upstream request."""

    async def fetch() -> tuple[int, bytes]:
        response = await gateway.client.get("/v1/training-jobs?limit=50", headers=ACME)
        return response.status, await response.read()

    results = await asyncio.gather(*(fetch() for _ in range(200)))
    assert gateway.upstream_calls == 1
    assert {status for status, _ in results} == {200}
    assert len({body for _, body in results}) == 1
    assert gateway.metric("metastudio_gateway_cache_requests_total", result="coalesced") >= 1


async def test_a_caller_disconnecting_does_not_cancel_the_shared_upstream_request(
    make_gateway: GatewayFactory,
) -> None:
    """When the caller that started a load goes away, the load finishes and the next caller gets a hit."""
    gateway = await make_gateway()
    gateway.simulator.state.response_delay_seconds = 0.3
    with pytest.raises(asyncio.TimeoutError):
        async with asyncio.timeout(0.05):
            await gateway.client.get("/v1/training-jobs", headers=ACME)
    await asyncio.sleep(0.5)  # real time: the simulator's deliberate delay, not a TTL
    gateway.simulator.state.response_delay_seconds = 0
    response = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert response.headers["X-Cache"] == "HIT"
    assert gateway.upstream_calls == 1


async def test_entries_expire_after_the_ttl(make_gateway: GatewayFactory) -> None:
    """Past ttl_seconds plus the stale-while-revalidate window a request is a miss. A hit's Age
    counts up and its max-age is the entry's life, so a browser, which counts Age against max-age
    (RFC 9111 4.2), keeps it for the 40 s left: no longer, and no shorter."""
    gateway = await make_gateway(ttl_seconds=60)
    first = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert first.headers["Cache-Control"] == "private, max-age=60"
    gateway.clock.advance(20)
    hit = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert hit.headers["X-Cache"] == "HIT"
    assert hit.headers["Cache-Control"] == "private, max-age=60"
    assert hit.headers["Age"] == "20"
    gateway.clock.advance(51)  # 71 s after the fetch: TTL 60 + 10 s stale-while-revalidate are over
    again = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert again.headers["X-Cache"] == "MISS"
    assert "Age" not in again.headers
    assert gateway.upstream_calls == 2


async def test_just_expired_entry_is_served_stale_while_one_refresh_runs(make_gateway: GatewayFactory) -> None:
    """Right after the TTL the old body comes back at once (STALE, max-age=0) and one background re-fetch renews it."""
    gateway = await make_gateway(ttl_seconds=60)
    first = await (await gateway.client.get("/v1/training-jobs", headers=ACME)).read()
    gateway.clock.advance(62)
    stale = await asyncio.gather(*(gateway.client.get("/v1/training-jobs", headers=ACME) for _ in range(20)))
    assert {r.headers["X-Cache"] for r in stale} <= {"STALE", "HIT"}
    assert stale[0].headers["X-Cache"] == "STALE"
    assert stale[0].headers["Cache-Control"] == "private, max-age=0"
    assert stale[0].headers["Age"] == "62"
    assert await stale[0].read() == first
    for _ in range(100):  # bounded wait for the background re-fetch to land
        renewed = await gateway.client.get("/v1/training-jobs", headers=ACME)
        if renewed.headers["X-Cache"] == "HIT":
            break
        await asyncio.sleep(0.01)
    assert renewed.headers["X-Cache"] == "HIT"
    assert gateway.upstream_calls == 2


async def test_if_none_match_gives_304_without_body(gateway: Gateway) -> None:
    """A matching If-None-Match answers 304 with the ETag and no body; a stale tag gets 200."""
    first = await gateway.client.get("/v1/training-jobs", headers=ACME)
    etag = first.headers["ETag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    not_modified = await gateway.client.get("/v1/training-jobs", headers={**ACME, "If-None-Match": etag})
    assert not_modified.status == 304
    assert await not_modified.read() == b""
    assert not_modified.headers["ETag"] == etag
    other = await gateway.client.get("/v1/training-jobs", headers={**ACME, "If-None-Match": '"nope"'})
    assert other.status == 200


async def test_list_headers_on_several_lines_are_read_whole(gateway: Gateway) -> None:
    """If-None-Match and Accept-Encoding sent on two lines (as a proxy may join or split them)
    are read as one list: the ETag on the second line gets a 304, gzip asked on the second line
    gets gzip (only the first line was read)."""
    first = await gateway.client.get("/v1/training-jobs", headers=ACME)
    etag = first.headers["ETag"]
    tags = CIMultiDict([*ACME.items(), ("If-None-Match", '"other"'), ("If-None-Match", etag)])
    assert (await gateway.client.get("/v1/training-jobs", headers=tags)).status == 304
    codings = CIMultiDict([*ACME.items(), ("Accept-Encoding", "br"), ("Accept-Encoding", "gzip")])
    gzipped = await gateway.client.get("/v1/training-jobs", headers=codings, auto_decompress=False)
    assert gzipped.headers.get("Content-Encoding") == "gzip"


async def test_each_page_has_an_etag_of_its_own_bytes(gateway: Gateway) -> None:
    """Two pages carry different ETags, and one page's ETag does not make another a 304; the
    same page asked again carries the same ETag."""
    first = await gateway.client.get("/v1/training-jobs?offset=0&limit=5", headers=ACME)
    second = await gateway.client.get("/v1/training-jobs?offset=1&limit=5", headers=ACME)
    assert await first.read() != await second.read()
    assert first.headers["ETag"] != second.headers["ETag"]
    crossed = await gateway.client.get(
        "/v1/training-jobs?offset=1&limit=5", headers={**ACME, "If-None-Match": first.headers["ETag"]}
    )
    assert crossed.status == 200
    again = await gateway.client.get("/v1/training-jobs?offset=0&limit=5", headers=ACME)
    assert again.headers["ETag"] == first.headers["ETag"]


async def test_a_popular_list_is_refreshed_in_the_background_before_it_goes_cold(
    make_gateway: GatewayFactory,
) -> None:
    """A hit in the last tenth of an entry's life starts one background re-fetch; hits go on."""
    gateway = await make_gateway(ttl_seconds=100)
    await gateway.client.get("/v1/training-jobs", headers=ACME)
    gateway.clock.advance(95)
    near_end = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert near_end.headers["X-Cache"] == "HIT"
    for _ in range(100):  # bounded wait until the re-fetched entry is served (Age restarts at 0)
        polled = await gateway.client.get("/v1/training-jobs", headers=ACME)
        if polled.headers["Age"] == "0":
            break
        await asyncio.sleep(0.01)
    assert polled.headers["Age"] == "0"
    assert gateway.upstream_calls == 2
    gateway.clock.advance(10)  # the first entry would have expired now
    later = await gateway.client.get("/v1/training-jobs", headers=ACME)
    assert later.headers["X-Cache"] == "HIT"
    assert gateway.upstream_calls == 2


async def test_cache_stays_within_max_bytes(make_gateway: GatewayFactory) -> None:
    """Many distinct pages never hold more than max_bytes."""
    gateway = await make_gateway(max_bytes=40_000)
    for offset in range(30):
        response = await gateway.client.get(f"/v1/training-jobs?limit=10&offset={offset}", headers=ACME)
        assert response.status == 200
    assert 0 < gateway.metric("metastudio_gateway_cache_bytes") <= 40_000


async def test_gzip_is_served_precompressed_to_clients_that_accept_it(gateway: Gateway) -> None:
    """Accept-Encoding: gzip gets the stored gzip body (its own ETag); others get identity; same JSON."""
    plain = await gateway.client.get("/v1/training-jobs?limit=20", headers={**ACME, "Accept-Encoding": "identity"})
    packed = await gateway.client.get("/v1/training-jobs?limit=20", headers={**ACME, "Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert int(packed.headers["Content-Length"]) < int(plain.headers["Content-Length"])
    assert await packed.json() == await plain.json()  # the client decompresses
    assert packed.headers["ETag"] != plain.headers["ETag"]
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert packed.headers["X-Cache"] == "HIT"
