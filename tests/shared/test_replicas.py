"""Replicas on one Redis behave as one gateway: one upstream call per key, one backoff, one cover
rule, and nothing secret in Redis. Real processes: a simulator, three gateways, redis-server."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
import redis

from gateway.cache.keys import list_key
from gateway.jobs.query import parse_list_query
from gateway.shared.flights import LEASE_SECONDS
from gateway.shared.keys import KeySpace
from tests.shared.helpers import (
    LOADED_MACHINE,
    PREFIX,
    REDIS_PASSWORD,
    deployment_on_redis,
    get,
    metric,
    replicas,
)
from tests.stack import (
    ACME_KEY,
    GLOBEX_KEY,
    LIVE_AK,
    LIVE_SK,
    LiveGateway,
    RedisServer,
    redis_server,
    set_faults,
    upstream_calls,
)

pytestmark = pytest.mark.redis

MARGIN_LEFT = 4
"""Cover links are issued for 24 h; with this margin they may be served for only 4 s."""
CONFIG = f"""
[upstream]
max_attempts = 1
[covers]
refresh_margin_seconds = {86400 - MARGIN_LEFT}
[rate_limit]
requests_per_second = 1000
burst = 1000
"""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, tuple[LiveGateway, ...]]]:
    with deployment_on_redis(tmp_path_factory.mktemp("replicas"), 3, extra_config=CONFIG) as deployed:
        yield deployed


async def test_concurrent_cold_requests_over_three_replicas_make_one_upstream_call(
    deployment: tuple[RedisServer, tuple[LiveGateway, ...]],
) -> None:
    """300 identical cold requests spread over 3 replicas, a slow upstream: all 200, same body, 1 upstream call."""
    _, gateways = deployment
    simulator = gateways[0].simulator_url
    set_faults(simulator, [{"kind": "latency", "seconds": 0.5}])
    before = upstream_calls(simulator)
    try:
        async with aiohttp.ClientSession() as session:
            answers = await asyncio.gather(
                *(get(session, f"{gateways[i % 3].base_url}/v1/training-jobs?limit=11") for i in range(300))
            )
    finally:
        set_faults(simulator, [])
    assert Counter(answer.status for answer in answers) == {200: 300}
    assert len({answer.body for answer in answers}) == 1
    assert upstream_calls(simulator) - before == 1


async def test_what_one_replica_loaded_the_others_serve_as_a_hit(
    deployment: tuple[RedisServer, tuple[LiveGateway, ...]],
) -> None:
    """A job loaded through one replica is X-Cache: HIT on the other two, with no upstream call."""
    _, gateways = deployment
    async with aiohttp.ClientSession() as session:
        listing = await get(session, f"{gateways[0].base_url}/v1/training-jobs?limit=1&sort_key=update_time")
        job_id = listing.json()["jobs"][0]["job_id"]  # type: ignore[index]
        first = await get(session, f"{gateways[0].base_url}/v1/training-jobs/{job_id}")
        before = upstream_calls(gateways[0].simulator_url)
        others = [await get(session, f"{gateway.base_url}/v1/training-jobs/{job_id}") for gateway in gateways[1:]]
    assert first.headers["X-Cache"] == "MISS"
    assert [(answer.status, answer.headers["X-Cache"]) for answer in others] == [(200, "HIT"), (200, "HIT")]
    assert {answer.body for answer in others} == {first.body}
    assert upstream_calls(gateways[0].simulator_url) == before


async def test_a_failure_backoff_set_by_one_replica_is_honoured_by_the_others(
    deployment: tuple[RedisServer, tuple[LiveGateway, ...]],
) -> None:
    """After one replica's load fails, the others answer the same 503 without an upstream call, and
    once the backoff has passed a replica loads again."""
    _, gateways = deployment
    simulator = gateways[0].simulator_url
    url = "/v1/training-jobs?limit=12"
    set_faults(simulator, [{"kind": "status", "status": 503, "remaining": 1}])
    before = upstream_calls(simulator)
    async with aiohttp.ClientSession() as session:
        failed = await get(session, gateways[0].base_url + url)
        others = [await get(session, gateway.base_url + url) for gateway in gateways[1:]]
        assert upstream_calls(simulator) - before == 1
        deadline = time.monotonic() + 10
        while (answer := await get(session, gateways[2].base_url + url)).status != 200:
            assert answer.status == 503 and time.monotonic() < deadline
            await asyncio.sleep(0.2)
    assert failed.status == 503
    assert [answer.status for answer in others] == [503, 503]
    assert {answer.json()["error"]["code"] for answer in [failed, *others]} == {"upstream_unavailable"}  # type: ignore[index]
    assert upstream_calls(simulator) - before == 2


def _cover_expiry(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["Expires"][0])


async def test_no_replica_serves_a_cover_inside_the_margin(
    deployment: tuple[RedisServer, tuple[LiveGateway, ...]],
) -> None:
    """/cover on another replica uses the link one replica's list brought (no upstream call); over
    the next seconds, as links reach the margin, no replica lists or redirects to one inside it."""
    _, gateways = deployment
    margin = 86400 - MARGIN_LEFT
    async with aiohttp.ClientSession() as session:
        listing = await get(session, f"{gateways[0].base_url}/v1/training-jobs?limit=5&sort_key=create_time")
        jobs = [job for job in listing.json()["jobs"] if job.get("cover_download_url")]  # type: ignore[index]
        await asyncio.sleep(0.3)  # the links are published to the other replicas
        before = upstream_calls(gateways[0].simulator_url)
        cover = await get(session, f"{gateways[1].base_url}/v1/training-jobs/{jobs[0]['job_id']}/cover")
        assert cover.status == 302 and cover.headers["Location"] == jobs[0]["cover_download_url"]
        assert upstream_calls(gateways[0].simulator_url) == before
        served: list[tuple[float, str]] = []
        deadline = time.monotonic() + MARGIN_LEFT + 3
        while time.monotonic() < deadline:
            for index, gateway in enumerate(gateways):
                now = time.time()
                page = await get(session, f"{gateway.base_url}/v1/training-jobs?limit=5&sort_key=create_time")
                served += [
                    (now, job["cover_download_url"]) for job in page.json()["jobs"] if "cover_download_url" in job
                ]  # type: ignore[index]
                job_id = jobs[index % len(jobs)]["job_id"]
                redirect = await get(session, f"{gateway.base_url}/v1/training-jobs/{job_id}/cover")
                served.append((now, redirect.headers["Location"]))
            await asyncio.sleep(0.25)
    assert len({url for _, url in served}) > len(jobs)  # links were renewed on the way
    assert all(_cover_expiry(url) - margin > asked_at - 1 for asked_at, url in served)
    assert [metric(g.base_url, "metastudio_gateway_expired_covers_served_total") for g in gateways] == [0.0] * 3


def test_redis_keeps_an_entry_only_while_a_replica_could_take_it(
    deployment: tuple[RedisServer, tuple[LiveGateway, ...]],
) -> None:
    """A page with no cover links (a search nothing matches) is fresh for the TTL (60 s) and kept
    by the replica for its stale-if-error hour; Redis keeps it only for the TTL and the lease
    time, as no replica takes an entry from Redis once it is stale."""
    server, gateways = deployment
    query = [("name", "no-job-is-called-this")]
    assert urllib_get(f"{gateways[0].base_url}/v1/training-jobs?{urlencode(query)}", ACME_KEY) == 200
    entry = KeySpace(PREFIX).entry(list_key("acme", parse_list_query(query)))
    client = redis.Redis.from_url(server.url)
    try:
        left_ms = client.pttl(entry)
    finally:
        client.close()
    assert 55_000 < left_ms <= (60 + LEASE_SECONDS) * 1000


def test_redis_holds_no_secret_and_every_key_starts_with_the_prefix(
    deployment: tuple[RedisServer, tuple[LiveGateway, ...]],
) -> None:
    """A SCAN over every key (entries, leases, backoffs, buckets, heartbeats) and value finds no
    credential, API key or password, and every key starts with the configured prefix."""
    server, gateways = deployment
    for gateway in gateways:  # every kind of key: a list, a job, a rate-limit bucket of each tenant
        for key in (ACME_KEY, GLOBEX_KEY):
            request = urllib_get(f"{gateway.base_url}/v1/training-jobs?limit=3", key)
            assert request == 200
    client = redis.Redis.from_url(server.url)
    dump = b""
    keys = list(client.scan_iter(count=1000))
    for key in keys:
        kind = client.type(key)
        value = {
            b"string": lambda k: client.get(k),
            b"hash": lambda k: b"".join(a + b for a, b in client.hgetall(k).items()),
            b"zset": lambda k: b"".join(client.zrange(k, 0, -1)),
        }[kind](key)
        dump += key + b"\n" + value + b"\n"
    client.close()
    assert any(b"{acme}" in key for key in keys) and any(b"{globex}" in key for key in keys)
    assert any(key.endswith(b":rate") for key in keys)
    assert all(key.startswith(f"{PREFIX}:".encode()) for key in keys)
    for secret in (LIVE_AK, LIVE_SK, ACME_KEY, GLOBEX_KEY, REDIS_PASSWORD):
        assert secret.encode() not in dump


def urllib_get(url: str, key: str) -> int:
    import urllib.request

    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


async def test_a_replica_killed_mid_fetch_costs_at_most_one_more_upstream_call(tmp_path: Path) -> None:
    """The replica holding the fill lease is SIGKILLed while the upstream answers slowly: the
    others' waiting requests still get 200, after at most 2 upstream calls in all."""
    with (
        redis_server(tmp_path, REDIS_PASSWORD) as server,
        replicas(tmp_path, 3, server.url, shared_config=LOADED_MACHINE) as gateways,
    ):
        simulator = gateways[0].simulator_url
        set_faults(simulator, [{"kind": "latency", "seconds": 1.5}])
        async with aiohttp.ClientSession() as session:
            holder = asyncio.ensure_future(get(session, f"{gateways[0].base_url}/v1/training-jobs?limit=13"))
            deadline = time.monotonic() + 5
            while upstream_calls(simulator) == 0:  # the holder's call reached the upstream
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            waiters = [
                asyncio.ensure_future(get(session, f"{gateway.base_url}/v1/training-jobs?limit=13"))
                for gateway in gateways[1:]
                for _ in range(20)
            ]
            await asyncio.sleep(0.2)
            gateways[0].process.send_signal(signal.SIGKILL)
            gateways[0].process.wait(timeout=5)
            answers = await asyncio.gather(*waiters)
            with pytest.raises(aiohttp.ClientError):
                await holder
        assert Counter(answer.status for answer in answers) == {200: 40}
        assert 1 <= upstream_calls(simulator) <= 2
