"""One rate limit per tenant across replicas: with three times the limit in demand, spread evenly
or all on one replica, the replicas together admit at most ``rate × T + burst`` and at least 90%
of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import pytest

from tests.shared.helpers import REDIS_PASSWORD, get, replicas
from tests.stack import ACME_KEY, GLOBEX_KEY, LiveGateway, redis_server

pytestmark = pytest.mark.redis

RATE, BURST = 20, 10
DEMAND_SECONDS = 3.0
CONFIG = f"[rate_limit]\nrequests_per_second = {RATE}\nburst = {BURST}\n"


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveGateway, ...]]:
    workdir = tmp_path_factory.mktemp("rate")
    with redis_server(workdir, REDIS_PASSWORD) as server, replicas(workdir, 3, server.url, extra_config=CONFIG) as gws:
        yield gws


async def _offer(targets: list[LiveGateway], key: str) -> tuple[int, float, float]:
    """Send 3× the rate for DEMAND_SECONDS, round-robin over ``targets``, each request at its
    planned moment; returns (admitted, seconds from first send to last send, to last answer)."""
    count = int(3 * RATE * DEMAND_SECONDS)
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()

        async def one(index: int) -> int:
            await asyncio.sleep(max(0.0, started + index / (3 * RATE) - time.monotonic()))
            target = targets[index % len(targets)]
            return (await get(session, f"{target.base_url}/v1/training-jobs?limit=5", key)).status

        statuses = await asyncio.gather(*(one(index) for index in range(count)))
        finished = time.monotonic()
    assert set(statuses) <= {200, 429}
    return statuses.count(200), (count - 1) / (3 * RATE), finished - started


@pytest.mark.parametrize(("spread", "key"), [("evenly", ACME_KEY), ("one replica", GLOBEX_KEY)])
async def test_replicas_together_admit_the_limit_under_three_times_the_demand(
    gateways: tuple[LiveGateway, ...], spread: str, key: str
) -> None:
    """admitted ≤ rate × T + burst over the whole run, and ≥ 90% of rate × T + burst over the sending time."""
    targets = list(gateways) if spread == "evenly" else [gateways[0]]
    admitted, sending, whole = await _offer(targets, key)
    assert admitted <= RATE * whole + BURST
    assert admitted >= 0.9 * (RATE * sending + BURST)
