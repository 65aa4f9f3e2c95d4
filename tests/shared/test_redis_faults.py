"""Redis is never a single point of failure: frozen (SIGSTOP), killed, and restarted empty, the
replicas keep answering on their own, stay ready, and share again once Redis is back; a
connection dropped without a word in between is noticed, the Pub/Sub listener's included."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from gateway.config.settings import SharedSettings
from gateway.observability.metrics import Metrics
from gateway.shared.keys import KeySpace
from gateway.shared.tier import HEARTBEAT_LAPSE_SECONDS, RedisTier
from tests.shared.helpers import PREFIX, REDIS_PASSWORD, UP, Answer, get, metric, replicas
from tests.shared.relay import silent_relay
from tests.stack import LiveGateway, RedisServer, redis_server, upstream_calls

pytestmark = pytest.mark.redis

OPERATION_TIMEOUT = 0.2
EXTRA_WAIT_ALLOWED = OPERATION_TIMEOUT + 0.1
"""The contract: no request waits more than the operation timeout + 100 ms longer because of Redis."""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, tuple[LiveGateway, ...]]]:
    workdir = tmp_path_factory.mktemp("faults")
    with (
        redis_server(workdir, REDIS_PASSWORD) as server,
        replicas(workdir, 2, server.url, shared_config=f"operation_timeout_seconds = {OPERATION_TIMEOUT}\n") as gws,
    ):
        yield server, gws


async def _timed(session: aiohttp.ClientSession, url: str) -> tuple[Answer, float]:
    started = time.monotonic()
    answer = await get(session, url)
    return answer, time.monotonic() - started


async def _survives(
    gateways: tuple[LiveGateway, ...], fault: Callable[[], None], recover: Callable[[], None], tag: str
) -> None:
    """Warm a key, measure cold requests with Redis well, apply ``fault``: cached keys 200, cold
    ones 200 within the allowed extra wait, /readyz 200; ``recover``: sharing within 10 s."""
    async with aiohttp.ClientSession() as session:
        cached = f"/v1/training-jobs?limit=20&batch_name={tag}"
        for gateway in gateways:
            assert (await get(session, gateway.base_url + cached)).status == 200
        baseline = [
            (await _timed(session, f"{gateway.base_url}/v1/training-jobs?limit=21&batch_name={tag}-{n}"))[1]
            for n, gateway in enumerate(gateways * 3)
        ]
        fault()
        during = [
            await _timed(session, f"{gateway.base_url}{path}")
            for _ in range(3)
            for gateway in gateways
            for path in (cached, f"/v1/training-jobs?limit=22&batch_name={tag}-{time.monotonic_ns()}")
        ]
        ready = [(await get(session, gateway.base_url + "/readyz")).status for gateway in gateways]
        down = [metric(gateway.base_url, UP) for gateway in gateways]
        recover()
        deadline = time.monotonic() + 10
        while any(metric(gateway.base_url, UP) != 1.0 for gateway in gateways):
            assert time.monotonic() < deadline, "sharing did not resume within 10 s"
            await asyncio.sleep(0.1)
        shared = f"/v1/training-jobs?limit=23&batch_name={tag}-after"
        before = upstream_calls(gateways[0].simulator_url)
        first = await get(session, gateways[0].base_url + shared)
        await asyncio.sleep(0.1)  # the fill is written in the background
        second = await get(session, gateways[1].base_url + shared)
    assert [answer.status for answer, _ in during] == [200] * len(during)
    assert max(seconds for _, seconds in during) <= max(baseline) + EXTRA_WAIT_ALLOWED
    assert ready == [200] * len(gateways)
    assert down == [0.0] * len(gateways)
    assert (first.status, second.status, second.headers["X-Cache"]) == (200, 200, "HIT")
    assert upstream_calls(gateways[0].simulator_url) - before == 1


async def test_a_frozen_redis_costs_at_most_one_operation_timeout(
    deployment: tuple[RedisServer, tuple[LiveGateway, ...]],
) -> None:
    """Redis SIGSTOPped (connected, silent): cached keys 200, cold keys 200 without waiting more
    than the operation timeout + 100 ms, ready; SIGCONT: sharing resumes within 10 s."""
    server, gateways = deployment
    await _survives(
        gateways,
        lambda: server.process.send_signal(signal.SIGSTOP),
        lambda: server.process.send_signal(signal.SIGCONT),
        "frozen",
    )


async def test_a_killed_redis_restarted_empty_is_used_again(
    deployment: tuple[RedisServer, tuple[LiveGateway, ...]],
) -> None:
    """Redis SIGKILLed: the replicas answer on their own; restarted on its port with no data and no
    scripts (NOSCRIPT), it is shared again within 10 s and no request fails on the way."""
    server, gateways = deployment

    def kill() -> None:
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=5)

    await _survives(gateways, kill, server.start, "killed")


def test_redis_down_at_start_up_does_not_stop_a_replica(tmp_path: Path) -> None:
    """A replica whose Redis is not there yet starts, is ready, and says the shared tier is down."""
    with redis_server(tmp_path, REDIS_PASSWORD) as server:
        server.stop()
        with replicas(tmp_path, 1, server.url) as (gateway,):
            assert metric(gateway.base_url, UP) == 0.0


async def _until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.2)


def _listeners(server: RedisServer, channel: str) -> int:
    """How many connections Redis has subscribed to ``channel``."""
    return int(server.cli("PUBSUB", "NUMSUB", channel).split()[1])


async def test_replicas_listen_again_after_their_connections_were_dropped_without_a_word(tmp_path: Path) -> None:
    """Something between the replicas and Redis drops every connection and tells only Redis (a
    NAT or a load balancer forgetting them): soon after the lapse (5 s), both replicas are
    subscribed again on new connections, and a cover link one learns reaches the other."""
    channels = KeySpace(PREFIX)
    with (
        redis_server(tmp_path, REDIS_PASSWORD) as server,
        silent_relay(server.port) as relay,
        replicas(tmp_path, 2, f"redis://:{REDIS_PASSWORD}@127.0.0.1:{relay.port}/0") as gateways,
    ):
        await _until(lambda: _listeners(server, channels.covers_channel) == 2, 10, "both replicas listening")
        assert relay.drop_silently() >= 2
        await _until(lambda: _listeners(server, channels.covers_channel) == 0, 5, "Redis forgetting them")
        await _until(
            lambda: _listeners(server, channels.covers_channel) == 2,
            HEARTBEAT_LAPSE_SECONDS + 10,
            "both replicas subscribed again",
        )
        assert _listeners(server, channels.fill_channel) == 2
        async with aiohttp.ClientSession() as session:
            listing = await get(session, f"{gateways[0].base_url}/v1/training-jobs?limit=5")
            job = next(job for job in listing.json()["jobs"] if job.get("cover_download_url"))  # type: ignore[index]
            await asyncio.sleep(0.3)  # the links are published to the other replica
            before = upstream_calls(gateways[0].simulator_url)
            cover = await get(session, f"{gateways[1].base_url}/v1/training-jobs/{job['job_id']}/cover")
        assert (cover.status, cover.headers["Location"]) == (302, job["cover_download_url"])
        assert upstream_calls(gateways[0].simulator_url) == before


async def test_a_stopping_replica_sends_the_writes_under_way_and_leaves_the_replica_count(tmp_path: Path) -> None:
    """Writes queued just before a replica stops (its last fill, a give-up, a cover publish) are
    sent before its connections close, within bounds: here three, on a Redis 0.1 s away (a relay)
    with one connection open, so that two must open another first. They land, and the replica's
    heartbeat entry is gone: the others stop counting it at once, not up to 5 s later."""
    with redis_server(tmp_path, REDIS_PASSWORD) as server, silent_relay(server.port, delay=0.1) as relay:
        settings = SharedSettings(
            redis_url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{relay.port}/0",
            key_prefix=PREFIX,
            operation_timeout_seconds=2,
        )
        tier = RedisTier(settings, Metrics(CollectorRegistry()))
        await tier.start()
        assert tier.up
        setter = tier.script("return redis.call('SET', KEYS[1], 'x')")
        for n in range(3):
            tier.spawn(tier.run("fill", lambda n=n: setter(keys=[f"{PREFIX}:last-{n}"])))
        await tier.close()
        assert [server.cli("EXISTS", f"{PREFIX}:last-{n}").strip() for n in range(3)] == ["1"] * 3
        assert server.cli("ZSCORE", KeySpace(PREFIX).replicas, tier.replica_id).strip() == ""
