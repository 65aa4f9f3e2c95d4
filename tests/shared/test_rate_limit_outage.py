"""While Redis is down, rate limits fall back to a local share: each replica admits the tenant's
limit divided by the replicas it last saw, so together they stay near the one limit (not one limit
each). Admitted requests are 200, the rest 429 with Retry-After. Once Redis is back, the limit is
shared again: one replica alone can use all of it."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.shared.keys import KeySpace
from tests.shared.helpers import PREFIX, UP, Answer, deployment_on_redis, metric, offer_three_times, replicas
from tests.stack import ACME_KEY, GLOBEX_KEY, LiveGateway, RedisServer

pytestmark = pytest.mark.redis

RATE, BURST = 20, 10
DEMAND_SECONDS = 2.0
CONFIG = f"[rate_limit]\nrequests_per_second = {RATE}\nburst = {BURST}\n"
HEARTBEATS = 'metastudio_gateway_shared_tier_operations_total{operation="heartbeat",result="ok"}'


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, tuple[LiveGateway, ...]]]:
    with deployment_on_redis(tmp_path_factory.mktemp("rate-outage"), 2, extra_config=CONFIG) as deployed:
        yield deployed


async def _until(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    """Poll ``condition()`` (bounded) until it is true."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.1)


async def _both_replicas_seen(server: RedisServer, gateways: tuple[LiveGateway, ...]) -> None:
    """Both replicas are in the heartbeat set, and each has since had two heartbeats answered, so
    each counts two replicas."""
    replicas_key = KeySpace(PREFIX).replicas
    await _until(lambda: server.cli("zcard", replicas_key).strip() == "2", "both replicas heartbeat")
    seen = [metric(gateway.base_url, HEARTBEATS) or 0.0 for gateway in gateways]
    await _until(
        lambda: all((metric(g.base_url, HEARTBEATS) or 0.0) >= n + 2 for g, n in zip(gateways, seen, strict=True)),
        "two more heartbeats on each replica",
    )


async def _offer(targets: list[LiveGateway], key: str) -> tuple[list[list[Answer]], float, float]:
    """3× the rate for DEMAND_SECONDS over ``targets``; returns the answers per target, and the
    seconds from the first send to the last send and to the last answer."""
    answers, sending, whole = await offer_three_times(targets, key, RATE, DEMAND_SECONDS)
    return [answers[start :: len(targets)] for start in range(len(targets))], sending, whole


def _refusals_say_when(answers: list[Answer]) -> None:
    """Every answer is 200 (admitted) or 429 with a whole-seconds Retry-After of at least 1."""
    assert {answer.status for answer in answers} <= {200, 429}
    for answer in answers:
        if answer.status == 429:
            assert int(answer.headers["Retry-After"]) >= 1


async def test_with_redis_down_each_replica_admits_its_share_and_sharing_resumes_after(
    deployment: tuple[RedisServer, tuple[LiveGateway, ...]],
) -> None:
    """Redis frozen: 3× the limit spread over two replicas; each admits about half the limit
    (rate/2 × T + burst/2), not the whole of it. Redis thawed: 3× the limit on one replica, which
    again admits about the whole limit (rate × T + burst)."""
    server, gateways = deployment
    await _both_replicas_seen(server, gateways)
    server.process.send_signal(signal.SIGSTOP)
    try:
        await _until(lambda: all(metric(g.base_url, UP) == 0.0 for g in gateways), "both replicas see Redis down")
        during, sending, whole = await _offer(list(gateways), ACME_KEY)
    finally:
        server.process.send_signal(signal.SIGCONT)
    for answers in during:
        _refusals_say_when(answers)
        admitted = sum(answer.status == 200 for answer in answers)
        assert admitted <= RATE / 2 * whole + BURST / 2  # a local bucket at half the limit: exact
        assert admitted >= 0.8 * (RATE / 2 * sending + BURST / 2)
    assert any(answer.status == 429 for answers in during for answer in answers)

    await _until(lambda: all(metric(g.base_url, UP) == 1.0 for g in gateways), "sharing resumes")
    (after,), sending, whole = await _offer([gateways[0]], GLOBEX_KEY)
    _refusals_say_when(after)
    admitted = sum(answer.status == 200 for answer in after)
    assert admitted <= RATE * whole + BURST
    assert admitted >= 0.75 * (RATE * sending + BURST)  # more than a local half could admit


async def test_replicas_started_while_redis_is_down_each_admit_the_share_expected(tmp_path: Path) -> None:
    """Two replicas started with Redis unreachable and expected_replicas = 2 (as the Helm chart
    sets it): each admits about half the limit, as replicas that had seen each other do. Each
    counted itself alone, and admitted the whole limit: twice the limit in all."""
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        nowhere = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
    with replicas(tmp_path, 2, nowhere, extra_config=CONFIG, shared_config="expected_replicas = 2\n") as gateways:
        assert all(metric(g.base_url, UP) == 0.0 for g in gateways)
        during, sending, whole = await _offer(list(gateways), ACME_KEY)
    for answers in during:
        _refusals_say_when(answers)
        admitted = sum(answer.status == 200 for answer in answers)
        assert admitted <= RATE / 2 * whole + BURST / 2
        assert admitted >= 0.8 * (RATE / 2 * sending + BURST / 2)
