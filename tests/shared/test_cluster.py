"""The shared tier on a Redis Cluster (what Huawei DCS cluster instances speak): three masters,
each tenant's keys in one slot by their hash tag, and still one upstream call per key."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.shared.helpers import LOADED_MACHINE, REDIS_PASSWORD, UP, get, metric, replicas
from tests.stack import GLOBEX_KEY, redis_cluster, set_faults, upstream_calls

pytestmark = pytest.mark.redis


async def test_concurrent_cold_requests_make_one_upstream_call_on_a_cluster(tmp_path: Path) -> None:
    """300 cold requests for two tenants' lists over 3 replicas on a 3-master cluster: one upstream call per key."""
    with (
        redis_cluster(tmp_path, REDIS_PASSWORD) as nodes,
        replicas(tmp_path, 3, nodes[0].url, cluster=True, shared_config=LOADED_MACHINE) as gws,
    ):
        simulator = gws[0].simulator_url
        set_faults(simulator, [{"kind": "latency", "seconds": 0.5}])
        async with aiohttp.ClientSession() as session:
            answers = await asyncio.gather(
                *(
                    get(session, f"{gws[i % 3].base_url}/v1/training-jobs?limit=9", *([GLOBEX_KEY] if i % 2 else []))
                    for i in range(300)
                )
            )
        assert Counter(answer.status for answer in answers) == {200: 300}
        assert upstream_calls(simulator) == 2


def test_a_replica_starts_without_its_cluster_and_shares_once_the_cluster_is_back(tmp_path: Path) -> None:
    """Every node of the cluster is down when a replica starts (redis-py's "cluster unreachable"
    is not one of its RedisErrors): the replica starts, is ready and says the shared tier is
    down; once the nodes are back, its heartbeat finds them and it shares again."""
    with redis_cluster(tmp_path, REDIS_PASSWORD) as nodes:
        for node in nodes:
            node.stop()
        with replicas(tmp_path, 1, nodes[0].url, cluster=True) as (gateway,):
            assert metric(gateway.base_url, UP) == 0.0
            time.sleep(2)  # heartbeats meet the unreachable cluster
            for node in nodes:
                node.start()
            deadline = time.monotonic() + 20
            while metric(gateway.base_url, UP) != 1.0:
                assert time.monotonic() < deadline, "the replica never shared again"
                time.sleep(0.2)
