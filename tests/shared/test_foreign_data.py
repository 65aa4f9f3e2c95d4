"""What a replica does with shared data no replica of this build would have written: a buggy
build's, a hand-written value, another app's key under the same prefix. It never serves it past
its own bounds, never takes one bad key for Redis being down, and its next fill repairs the key.
Real processes: a simulator, two gateways, redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import pytest
import redis

from gateway.cache.entry import CacheEntry, CoverLink
from gateway.cache.keys import list_key
from gateway.jobs.query import parse_list_query
from gateway.shared.codec import decode_entry, encode_covers, encode_entry
from gateway.shared.keys import KeySpace
from tests.shared.helpers import PREFIX, deployment_on_redis, get, metric
from tests.stack import LiveGateway, RedisServer, upstream_calls

pytestmark = pytest.mark.redis

KEYS = KeySpace(PREFIX)
TEN_YEARS = 10 * 365 * 86400.0
FILL_ERRORS = 'metastudio_gateway_shared_tier_operations_total{operation="fill_or_lease",result="error"}'


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, tuple[LiveGateway, ...]]]:
    with deployment_on_redis(tmp_path_factory.mktemp("foreign"), 2) as deployed:
        yield deployed


@pytest.fixture
def client(deployment: tuple[RedisServer, tuple[LiveGateway, ...]]) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(deployment[0].url)
    yield connection
    connection.close()


async def filled(client: redis.Redis, key: str, unlike: str | None = None) -> bytes:
    """The entry a replica's fill wrote under ``key`` (written just after it answered), waiting
    at most 5 s for one whose ETag is not ``unlike``."""
    for _ in range(50):
        data = client.hget(key, "entry")
        if isinstance(data, bytes) and decode_entry(data).etag != unlike:
            return data
        await asyncio.sleep(0.1)
    raise AssertionError(f"no entry was filled under {key}")


def entry_key(limit: int) -> str:
    return KEYS.entry(list_key("acme", parse_list_query([("limit", str(limit))])))


async def test_an_entry_claiming_to_stay_fresh_for_years_is_refused_and_replaced(
    deployment: tuple[RedisServer, tuple[LiveGateway, ...]], client: redis.Redis
) -> None:
    """A shared entry whose times run ten years ahead (its body not the upstream's) is not served
    by the other replica, whose own fill replaces it in Redis. It was served, and kept in that
    replica's memory for as long as it claimed, with max-age=315359997, even after Redis lost it."""
    first, second = deployment[1]
    async with aiohttp.ClientSession() as session:
        assert (await get(session, f"{first.base_url}/v1/training-jobs?limit=7")).status == 200
        key = entry_key(7)
        await filled(client, key)
        now = time.time()
        poisoned = CacheEntry(
            body=b'{"poisoned":true}',
            etag='"poisoned"',
            fetched_at=now,
            fresh_until=now + TEN_YEARS,
            keep_until=now + TEN_YEARS,
        )
        client.hset(key, mapping={"fresh_until": repr(poisoned.fresh_until), "entry": encode_entry(poisoned)})
        answer = await get(session, f"{second.base_url}/v1/training-jobs?limit=7")
    assert answer.status == 200
    assert answer.body.startswith(b'{"count":') and b"poisoned" not in answer.body
    assert int(answer.headers["Cache-Control"].rpartition("=")[2]) <= 60
    repaired = decode_entry(await filled(client, key, unlike=poisoned.etag))
    assert repaired.body.startswith(b'{"count":') and repaired.fresh_until < time.time() + 120


async def test_a_key_of_another_type_is_a_miss_for_that_key_not_redis_down(
    deployment: tuple[RedisServer, tuple[LiveGateway, ...]], client: redis.Redis
) -> None:
    """Another app's string under an entry's name: answered from the upstream, with no Redis error
    counted (each one took the replica off Redis until the next heartbeat, every time the key was
    asked for), and the fill writes the entry over it."""
    _, second = deployment[1]
    key = entry_key(8)
    client.set(key, "another app's value")
    errors = metric(second.base_url, FILL_ERRORS) or 0.0
    async with aiohttp.ClientSession() as session:
        answers = [await get(session, f"{second.base_url}/v1/training-jobs?limit=8") for _ in range(3)]
    assert [answer.status for answer in answers] == [200, 200, 200]
    assert (metric(second.base_url, FILL_ERRORS) or 0.0) == errors
    assert client.type(key) == b"hash"


@pytest.mark.parametrize(
    ("suffix", "value", "limit"), [(":lease", "deadbeef", 9), (":backoff", "UpstreamUnavailable", 12)]
)
async def test_a_lease_or_backoff_that_never_expires_does_not_block_the_key(
    deployment: tuple[RedisServer, tuple[LiveGateway, ...]], client: redis.Redis, suffix: str, value: str, limit: int
) -> None:
    """A lease or backoff with no expiry (no replica writes one) is taken for absent: the key is
    loaded at once. A lease made every request wait out the deadline for a 504, a backoff gave
    503 without end, until someone deleted the key by hand."""
    _, second = deployment[1]
    client.set(entry_key(limit) + suffix, value)
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        answer = await get(session, f"{second.base_url}/v1/training-jobs?limit={limit}")
    assert answer.status == 200
    assert time.monotonic() - started < 5


async def test_a_heard_cover_link_no_load_would_keep_is_ignored(
    deployment: tuple[RedisServer, tuple[LiveGateway, ...]], client: redis.Redis
) -> None:
    """A covers message whose expiry is in milliseconds (a buggy build's) and whose URL points
    elsewhere does not replace the link a replica heard from a real load: /cover still lands on
    the upstream's link (it redirected every replica but the loader to the message's URL)."""
    first, second = deployment[1]
    async with aiohttp.ClientSession() as session:
        listing = (await get(session, f"{first.base_url}/v1/training-jobs?limit=20")).json()
        job = next(job for job in listing["jobs"] if "cover_download_url" in job)  # type: ignore[index]
        await asyncio.sleep(0.5)  # the real link reaches the other replica
        bogus = CoverLink("https://elsewhere.example/cover.jpg", time.time() * 1000)
        client.publish(KEYS.covers_channel, encode_covers("acme", {job["job_id"]: bogus}))
        await asyncio.sleep(0.5)
        calls = upstream_calls(second.simulator_url)
        cover = await get(session, f"{second.base_url}/v1/training-jobs/{job['job_id']}/cover")
    assert cover.status == 302
    assert cover.headers["Location"] == job["cover_download_url"]
    assert upstream_calls(second.simulator_url) == calls
