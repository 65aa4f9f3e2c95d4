"""What the shared tier's live tests share: replicas of one deployment on one Redis (their
output watched by the leak check, the Redis password registered as a secret), and small clients
for the gateways (and a steady load at three times a rate limit) and for metrics."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.leaks import record, register_secrets, unwatch, watch
from tests.stack import ACME_KEY, GLOBEX_KEY, LIVE_AK, LIVE_SK, LiveGateway, RedisServer, live_replicas, redis_server

REDIS_PASSWORD = "redis-pass-never-logged-7f3a"
PREFIX = "mgwtest"
UP = "metastudio_gateway_shared_tier_up"
"""The gauge that is 1 while a replica shares through Redis, 0 while it runs on its own."""
LOADED_MACHINE = "operation_timeout_seconds = 0.5\n"
"""Three gateways, a simulator, Redis and 300 client connections on two cores: a Redis call can
wait on a busy event loop for longer than the default 100 ms, which (rightly) sends a replica
off on its own. These tests are about sharing, so they give Redis calls more time."""


@contextmanager
def replicas(
    workdir: Path,
    count: int,
    redis_url: str,
    *,
    extra_config: str = "",
    shared_config: str = "",
    cluster: bool = False,
) -> Iterator[tuple[LiveGateway, ...]]:
    """``count`` gateways sharing ``redis_url`` (from ``GATEWAY_REDIS_URL``, as an operator would
    set it) in front of one simulator; ``shared_config`` adds keys to ``[shared]``. Their output is
    checked for leaks as it comes."""
    register_secrets([REDIS_PASSWORD, LIVE_AK, LIVE_SK, ACME_KEY, GLOBEX_KEY])
    logs = [workdir / ("gateway.log" if index == 0 else f"gateway-{index}.log") for index in range(count)]
    for log in logs:
        watch(log)
    shared = f'[shared]\nkey_prefix = "{PREFIX}"\ncluster = {"true" if cluster else "false"}\n{shared_config}'
    try:
        with live_replicas(
            workdir, count, extra_config=shared + extra_config, extra_env={"GATEWAY_REDIS_URL": redis_url}
        ) as gateways:
            yield gateways
    finally:
        for log in logs:
            unwatch(log)


@contextmanager
def deployment_on_redis(
    workdir: Path, count: int, *, extra_config: str = ""
) -> Iterator[tuple[RedisServer, tuple[LiveGateway, ...]]]:
    """A redis-server (password ``REDIS_PASSWORD``) and ``count`` replicas sharing it, Redis calls
    given the time a loaded machine needs (``LOADED_MACHINE``)."""
    with (
        redis_server(workdir, REDIS_PASSWORD) as server,
        replicas(workdir, count, server.url, extra_config=extra_config, shared_config=LOADED_MACHINE) as gateways,
    ):
        yield server, gateways


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


async def get(session: aiohttp.ClientSession, url: str, key: str = ACME_KEY) -> Answer:
    """GET ``url`` as the tenant with API key ``key``, without following redirects."""
    async with session.get(url, headers={"Authorization": f"Bearer {key}"}, allow_redirects=False) as response:
        body = await response.read()
    headers = dict(response.headers)
    record(body + json.dumps(headers).encode())
    return Answer(response.status, headers, body)


def metric(base_url: str, sample: str) -> float | None:
    """The value of one sample line (name with labels, exactly as exported) on ``/metrics``."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return None


async def offer_three_times(
    targets: list[LiveGateway], key: str, rate: float, seconds: float
) -> tuple[list[Answer], float, float]:
    """Send 3× ``rate`` for ``seconds``, round-robin over ``targets`` as the tenant with API key
    ``key``, each request at its planned moment; returns the answers in sending order, and the
    seconds from the first send to the last send and to the last answer."""
    count = int(3 * rate * seconds)
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()

        async def one(index: int) -> Answer:
            await asyncio.sleep(max(0.0, started + index / (3 * rate) - time.monotonic()))
            target = targets[index % len(targets)]
            return await get(session, f"{target.base_url}/v1/training-jobs?limit=5", key)

        answers = await asyncio.gather(*(one(index) for index in range(count)))
        finished = time.monotonic()
    return answers, (count - 1) / (3 * rate), finished - started
