"""One rate limit per tenant across replicas: with three times the limit in demand, spread evenly
or all on one replica, the replicas together admit at most ``rate × T + burst`` and at least 90%
of it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest

from tests.shared.helpers import REDIS_PASSWORD, get, offer_three_times, replicas
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
    """3× the rate for DEMAND_SECONDS over ``targets``; returns (admitted, seconds from first send
    to last send, to last answer)."""
    answers, sending, whole = await offer_three_times(targets, key, RATE, DEMAND_SECONDS)
    statuses = [answer.status for answer in answers]
    assert set(statuses) <= {200, 429}
    return statuses.count(200), sending, whole


@pytest.mark.parametrize(("spread", "key"), [("evenly", ACME_KEY), ("one replica", GLOBEX_KEY)])
async def test_replicas_together_admit_the_limit_under_three_times_the_demand(
    gateways: tuple[LiveGateway, ...], spread: str, key: str
) -> None:
    """admitted ≤ rate × T + burst over the whole run, and ≥ 90% of rate × T + burst over the sending time."""
    targets = list(gateways) if spread == "evenly" else [gateways[0]]
    admitted, sending, whole = await _offer(targets, key)
    assert admitted <= RATE * whole + BURST
    assert admitted >= 0.9 * (RATE * sending + BURST)


async def test_a_client_waiting_the_retry_after_it_was_given_is_admitted(gateways: tuple[LiveGateway, ...]) -> None:
    """Over its limit (each replica's allowance and the shared bucket emptied), a client that
    waits exactly the Retry-After it was told, then asks the same replica, is admitted, round
    after round: the replica leased the token for it when it was due. It was refused again
    (Retry-After 1) every time, the lease asked only when it came back: half its limit."""
    async with aiohttp.ClientSession() as session:
        for round_number in range(4):
            url = f"{gateways[round_number % len(gateways)].base_url}/v1/training-jobs?limit=5"
            while (refused := await get(session, url, ACME_KEY)).status == 200:
                pass
            assert refused.status == 429
            await asyncio.sleep(int(refused.headers["Retry-After"]))
            assert (await get(session, url, ACME_KEY)).status == 200
