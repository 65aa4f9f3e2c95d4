"""Chaos scenarios and a bounded soak against the simulator (loopback only). Prints tables.

    python benchmarks/chaos.py                 # every scenario, then a 120 s soak
    python benchmarks/chaos.py --soak-seconds 30 --scenario-seconds 3

The gateway and the simulator run as real processes (``tests.stack``); faults are
set through the simulator's control endpoint. Each scenario drives the same mixed traffic
(two tenants, many list pages, single jobs) and reports what clients saw, how many calls
reached the upstream, how many answers were stale, and the p99 latency. The last scenario is
the shared tier's Redis outage: two replicas on one ``redis-server``, which is frozen (SIGSTOP),
thawed, then killed and restarted empty while traffic runs (the upstream stays healthy).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import perf  # noqa: F401 - puts the repository root on the path for tests.stack

from tests.stack import LiveGateway, RedisServer, live_replicas, live_stack, redis_server

DOCUMENTED = {200, 304, 400, 401, 404, 405, 429, 500, 502, 503, 504}
CONFIG = """
[cache]
ttl_seconds = 2
stale_if_error_seconds = 600
stale_while_revalidate_seconds = 1

[upstream]
timeout_seconds = 1.5
read_timeout_seconds = 0.8
connect_timeout_seconds = 0.5
max_attempts = 3
retry_after_cap_seconds = 0.5

[circuit_breaker]
window_seconds = 10
min_calls = 20
failure_ratio = 0.5
open_seconds = 3
"""

# (name, faults); every scenario gets a fresh gateway whose cache was warmed first, except the
# "cold" ones, which start empty so nothing stale can cover for the upstream.
SCENARIOS: list[tuple[str, list[dict[str, Any]]]] = [
    ("healthy", []),
    ("5xx on half the calls", [{"kind": "status", "status": 500, "probability": 0.5}]),
    ("429 Retry-After 1 on every call", [{"kind": "status", "status": 429, "retry_after": 1}]),
    ("latency 2 s (over the deadline)", [{"kind": "latency", "seconds": 2.0}]),
    ("connection reset", [{"kind": "reset"}]),
    ("truncated body", [{"kind": "truncated"}]),
    ("not JSON", [{"kind": "not_json"}]),
    ("wrong shape", [{"kind": "wrong_shape"}]),
    ("huge body", [{"kind": "huge", "probability": 0.2}]),
    ("slow drip", [{"kind": "slow_drip", "seconds": 0.2}]),
    ("401 (our credentials)", [{"kind": "status", "status": 401}]),
    ("acme's user failing, globex healthy", [{"kind": "status", "status": 500, "app_user_id": "acme-web"}]),
    ("total outage", [{"kind": "status", "status": 503}]),
    ("total outage, cold cache", [{"kind": "status", "status": 503}]),
    ("connection reset, cold cache", [{"kind": "reset"}]),
]
SOAK_FAULTS = [
    {"kind": "status", "status": 500, "probability": 0.04},
    {"kind": "reset", "probability": 0.02},
    {"kind": "truncated", "probability": 0.02},
    {"kind": "status", "status": 429, "retry_after": 1, "probability": 0.02},
]


@dataclass
class Result:
    name: str
    statuses: Counter[int]
    upstream_calls: int
    stale: int
    p99_ms: float


async def _json(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with session.request(method, url, data=None if body is None else json.dumps(body)) as response:
        return await response.json(content_type=None)


async def _stale_count(session: aiohttp.ClientSession, base_url: str) -> float:
    async with session.get(f"{base_url}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith('metastudio_gateway_cache_requests_total{result="stale"}'):
                return float(line.split()[-1])
    return 0.0


async def _traffic(live: LiveGateway, seconds: float, concurrency: int = 16) -> tuple[Counter[int], list[float]]:
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    keys = {"acme": live.acme_key, "globex": live.globex_key}
    rng = random.Random(1)

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            tenant = rng.choice(("acme", "globex"))
            path = f"/v1/training-jobs?limit=10&offset={rng.randrange(12)}"
            started = time.perf_counter()
            try:
                async with session.get(
                    live.base_url + path, headers={"Authorization": f"Bearer {keys[tenant]}"}
                ) as response:
                    await response.read()
                    statuses[response.status] += 1
            except aiohttp.ClientError:
                statuses[0] += 1  # the gateway itself failed to answer: never documented
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return statuses, latencies


def _p99_ms(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


async def _scenario(live: LiveGateway, name: str, faults: list[dict[str, Any]], seconds: float) -> Result:
    async with aiohttp.ClientSession() as session:
        if "cold cache" not in name:
            await _traffic(live, 0.5)  # warm the cache so stale answers are possible
        calls_before = (await _json(session, "GET", f"{live.simulator_url}/_simulator/stats"))["requests"]
        stale_before = await _stale_count(session, live.base_url)
        await _json(session, "PUT", f"{live.simulator_url}/_simulator/faults", faults)
        statuses, latencies = await _traffic(live, seconds)
        calls = (await _json(session, "GET", f"{live.simulator_url}/_simulator/stats"))["requests"] - calls_before
        stale = int(await _stale_count(session, live.base_url) - stale_before)
    return Result(name, statuses, calls, stale, _p99_ms(latencies))


REDIS_OUTAGE = "Redis frozen, thawed, killed, restarted"


async def _counts(gateways: tuple[LiveGateway, ...]) -> tuple[int, float]:
    """Upstream calls so far, and stale answers so far summed over the replicas."""
    async with aiohttp.ClientSession() as session:
        calls = (await _json(session, "GET", f"{gateways[0].simulator_url}/_simulator/stats"))["requests"]
        stale = sum([await _stale_count(session, gateway.base_url) for gateway in gateways])
    return int(calls), stale


async def _misbehave(redis: RedisServer, seconds: float) -> None:
    """Healthy, frozen, thawed, killed, restarted empty: a quarter of ``seconds`` each (the last in two)."""
    step = seconds / 4
    await asyncio.sleep(step)
    redis.process.send_signal(signal.SIGSTOP)
    await asyncio.sleep(step)
    redis.process.send_signal(signal.SIGCONT)
    await asyncio.sleep(step)
    redis.process.kill()
    await asyncio.to_thread(redis.process.wait, 5)
    await asyncio.sleep(step / 2)
    await asyncio.to_thread(redis.start)


async def _redis_outage(seconds: float) -> Result:
    """Two replicas sharing one Redis, with traffic on both while the Redis misbehaves."""
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        redis = stack.enter_context(redis_server(workdir, "chaos-redis-password"))
        gateways = stack.enter_context(
            live_replicas(workdir, 2, extra_config=CONFIG, extra_env={"GATEWAY_REDIS_URL": redis.url})
        )
        for gateway in gateways:
            await _traffic(gateway, 0.5)
        calls_before, stale_before = await _counts(gateways)
        traffic, _ = await asyncio.gather(
            asyncio.gather(*(_traffic(gateway, seconds) for gateway in gateways)), _misbehave(redis, seconds)
        )
        calls, stale = await _counts(gateways)
    statuses: Counter[int] = sum((counts for counts, _ in traffic), Counter())
    latencies = [latency for _, replica_latencies in traffic for latency in replica_latencies]
    return Result(REDIS_OUTAGE, statuses, calls - calls_before, int(stale - stale_before), _p99_ms(latencies))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _print_scenarios(results: list[Result]) -> None:
    print(f"| {'scenario':38} | {'client statuses':34} | {'upstream calls':>14} | {'stale':>6} | {'p99 ms':>7} |")
    print(f"|{'-' * 40}|{'-' * 36}|{'-' * 16}|{'-' * 8}|{'-' * 9}|")
    for r in results:
        statuses = " ".join(f"{status}:{count}" for status, count in sorted(r.statuses.items()))
        print(f"| {r.name:38} | {statuses:34} | {r.upstream_calls:>14} | {r.stale:>6} | {r.p99_ms:>7.1f} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario-seconds", type=float, default=5.0)
    parser.add_argument("--soak-seconds", type=float, default=120.0)
    args = parser.parse_args()
    results = []
    for name, faults in SCENARIOS:
        with tempfile.TemporaryDirectory() as workdir, live_stack(Path(workdir), extra_config=CONFIG) as live:
            results.append(await _scenario(live, name, faults, args.scenario_seconds))
    results.append(await _redis_outage(max(4.0, args.scenario_seconds)))
    _print_scenarios(results)
    if args.soak_seconds <= 0:
        return
    with tempfile.TemporaryDirectory() as workdir, live_stack(Path(workdir), extra_config=CONFIG) as live:
        rss_start = _rss_kib(live.process.pid)
        async with aiohttp.ClientSession() as session:
            await _json(session, "PUT", f"{live.simulator_url}/_simulator/faults", SOAK_FAULTS)
        statuses, latencies = await _traffic(live, args.soak_seconds)
        rss_end = _rss_kib(live.process.pid)
        undocumented = sum(count for status, count in statuses.items() if status not in DOCUMENTED)
        print()
        print(f"soak: {args.soak_seconds:.0f} s, ~10% upstream faults (500, reset, truncated, 429)")
        print("| requests | statuses | non-documented | p99 ms | RSS start MiB | RSS end MiB |")
        print("|---|---|---|---|---|---|")
        shown = " ".join(f"{status}:{count}" for status, count in sorted(statuses.items()))
        print(
            f"| {sum(statuses.values())} | {shown} | {undocumented} | {_p99_ms(latencies):.1f} "
            f"| {rss_start / 1024:.1f} | {rss_end / 1024:.1f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
