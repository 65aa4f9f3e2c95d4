"""The seven measurements. Each returns plain data (JSON-ready) and prints a progress line."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from itertools import product
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from gateway.upstream.client import USER_AGENT
from gateway.upstream.signing import sign
from perf import wrk
from perf.system import Cpus, http_get, rss_bytes, version_of
from perf.targets import (
    APP_USER_ID,
    AUTH,
    JOBS_PATH,
    JOBS_PER_USER,
    LIST_PATH,
    PROJECT_ID,
    bare_app,
    capture_payload,
    gateway_stack,
    signed_upstream_request,
)
from perf.wrk import Target
from tests.stack import LIVE_AK, LIVE_SK, LiveGateway, upstream_calls

HIT_CONNECTIONS = 50
CURVE_CONNECTIONS = (1, 8, 64, 256)
METRIC_PREFIX = "metastudio_gateway_"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """How long and how much to measure (the full run or ``--quick``)."""

    warmup_seconds: int
    hit_seconds: int
    curve_seconds: int
    miss_requests: int
    coalesce_requests: int
    memory_max_bytes: int
    signing_iterations: int
    hit_rounds: int
    fill_factor: float = 1.3


@dataclass(frozen=True)
class Bench:
    """What the wrk measurements share: the plan, the cores, a scratch directory."""

    plan: Plan
    cpus: Cpus
    workdir: Path

    def measure(self, target: Target, connections: int, seconds: int, warmup: int) -> dict[str, Any]:
        """A wrk run against ``target`` (after a warm-up run of ``warmup`` seconds, if any), as a dict."""
        result = wrk.measure(self.cpus, self.workdir, target, connections=connections, seconds=seconds, warmup=warmup)
        return asdict(result)


def _ratios(gateway: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, float]:
    """gateway / baseline for req/s, p50 and p99."""
    return {
        "rps_ratio": gateway["rps"] / baseline["rps"],
        "p50_ratio": gateway["p50_ms"] / baseline["p50_ms"],
        "p99_ratio": gateway["p99_ms"] / baseline["p99_ms"],
    }


def _round_ratios(gateway: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, Any]:
    """``_ratios`` of two ``median_run``s, and gateway / baseline for req/s and p99 round by
    round, with the median of each: runs next to each other in a round see the same minute of
    the machine, whose speed drifts by a tenth or more between minutes (the ratio of the
    medians pairs runs from different rounds)."""
    rps = [ours / theirs for ours, theirs in zip(gateway["rounds_rps"], baseline["rounds_rps"], strict=True)]
    p99 = [ours / theirs for ours, theirs in zip(gateway["rounds_p99_ms"], baseline["rounds_p99_ms"], strict=True)]
    return {
        **_ratios(gateway, baseline),
        "rounds_rps_ratio": rps,
        "rounds_p99_ratio": p99,
        "rps_ratio_by_round": statistics.median(rps),
        "p99_ratio_by_round": statistics.median(p99),
    }


# ---------------------------------------------------------------- /metrics


def metric_sum(text: str, name: str, label: str = "") -> float:
    """Sum of the samples of metric ``name`` whose label set contains ``label``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " ") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def cache_counts(base_url: str) -> dict[str, float]:
    """The gateway's cache results so far, from /metrics: hit, miss, stale, coalesced."""
    text = http_get(base_url + "/metrics")[2].decode()
    name = METRIC_PREFIX + "cache_requests_total"
    return {result: metric_sum(text, name, f'result="{result}"') for result in ("hit", "miss", "stale", "coalesced")}


def _delta(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    """Per-key difference of two counter readings."""
    return {key: after[key] - before[key] for key in after}


# ---------------------------------------------------------------- 1, 2, 7: wrk


@dataclass(frozen=True)
class HitTargets:
    """The wrk targets of measurements 1 and 2 (gzip ones when the gateway serves gzip)."""

    gateway: Target
    chain: Target
    """A second gateway with ``fast_hit_path = false``: hits through aiohttp's handler chain."""
    bare: Target
    nginx: Target
    floor: Target
    """The least a Python server on the gateway's loop does per request (``benchmarks/floor_app.py``)."""
    gateway_gzip: Target | None
    bare_gzip: Target | None

    def in_turn(self, round_index: int = 0) -> list[Target]:
        """The order they take turns in round ``round_index``: each gateway run next to its
        baselines (plain hits between bare aiohttp and nginx), every group reversed in odd
        rounds, so that neither run of a pair always goes first; the floor last. (Until stop 24
        each baseline went just before its gateway run, and nginx four runs after the gateway's.)"""
        gzip_pair = [self.bare_gzip, self.gateway_gzip] if self.bare_gzip and self.gateway_gzip else []
        groups = [
            [self.bare, self.gateway, self.nginx],
            [self.chain],
            gzip_pair,
            [new_request_ids(self.nginx), new_request_ids(self.gateway)],
        ]
        if round_index % 2:
            groups = [group[::-1] for group in groups]
        return [*(target for group in groups for target in group), self.floor]


def new_request_ids(target: Target) -> Target:
    """``target`` with a new ``X-Request-Id`` on every request: every head differs, so none is
    read from the gateway's remembered heads."""
    return replace(target, name=f"{target.name}, new X-Request-Id each", new_request_ids=True)


def median_run(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median req/s (the lower middle for an even count), but for its p50 and p99:
    each the median of the rounds' own, as a round's tail moves independently of its req/s (until
    stop 23 they were the median req/s round's, so a p99 was whichever round that was). With every
    round's req/s and p99."""
    chosen = sorted(runs, key=lambda run: run["rps"])[(len(runs) - 1) // 2]
    return {
        **chosen,
        "p50_ms": statistics.median(run["p50_ms"] for run in runs),
        "p99_ms": statistics.median(run["p99_ms"] for run in runs),
        "rounds_rps": [run["rps"] for run in runs],
        "rounds_p99_ms": [run["p99_ms"] for run in runs],
    }


def hit_measurements(bench: Bench, hit: HitTargets, base_url: str) -> dict[str, Any]:
    """1 and 2. Gateway hits vs the bare app (and gzip vs gzip) and vs nginx at wrk -t1 -c50.

    The targets take turns for ``plan.hit_rounds`` rounds (warm-up in the first only), in the
    order ``HitTargets.in_turn`` gives; each target's median round is reported (``median_run``:
    its p50 and p99 are the medians of the rounds'), so a burst of outside load skews one round,
    not the ratio. Against nginx, the ratios round by round too (``_round_ratios``).
    """
    before = cache_counts(base_url)
    runs: dict[str, list[dict[str, Any]]] = {target.name: [] for target in hit.in_turn()}
    for round_index in range(bench.plan.hit_rounds):
        for target in hit.in_turn(round_index):
            warmup = bench.plan.warmup_seconds if round_index == 0 else 0
            runs[target.name].append(bench.measure(target, HIT_CONNECTIONS, bench.plan.hit_seconds, warmup))
    median = {name: median_run(target_runs) for name, target_runs in runs.items()}
    gateway, bare, nginx = median[hit.gateway.name], median[hit.bare.name], median[hit.nginx.name]
    results: dict[str, Any] = {
        "hit": {
            "gateway": gateway,
            "bare": bare,
            **_ratios(gateway, bare),
            "gateway_cache_results_during_runs": _delta(cache_counts(base_url), before),
        },
        "chain": {"gateway": median[hit.chain.name], **_ratios(median[hit.chain.name], bare)},
        "nginx": {"nginx": nginx, **_round_ratios(gateway, nginx)},
        "floor": _floor(median[hit.floor.name], gateway, nginx),
        "new_request_ids": _new_request_ids(median, hit),
        "gzip": None,
    }
    if hit.gateway_gzip and hit.bare_gzip:
        gateway_gzip, bare_gzip = median[hit.gateway_gzip.name], median[hit.bare_gzip.name]
        results["gzip"] = {"gateway": gateway_gzip, "bare": bare_gzip, **_ratios(gateway_gzip, bare_gzip)}
    return results


def _new_request_ids(median: Mapping[str, dict[str, Any]], hit: HitTargets) -> dict[str, Any]:
    """Gateway and nginx hits with a new ``X-Request-Id`` on every request (so every head is
    new to the gateway), and each one's CPU per hit above the floor."""
    gateway, nginx = median[new_request_ids(hit.gateway).name], median[new_request_ids(hit.nginx).name]
    return {
        "gateway": gateway,
        "nginx": nginx,
        **_ratios(gateway, nginx),
        **_above_floor(median[hit.floor.name], gateway=gateway, nginx=nginx),
    }


def _floor(floor: Mapping[str, Any], gateway: Mapping[str, Any], nginx: Mapping[str, Any]) -> dict[str, Any]:
    """The floor's run, its CPU per request, and the gateway's and nginx's CPU per hit above it."""
    return {
        "floor": floor,
        "floor_us_per_hit": cpu_us_per_hit(floor),
        **_above_floor(floor, gateway=gateway, nginx=nginx),
    }


def cpu_us_per_hit(run: Mapping[str, Any]) -> float:
    """Microseconds of the server process's CPU per request in a wrk run: its CPU share of the
    core over req/s. When wrk, not the server, is the limit (as it nearly is for the floor), the
    server batches less per wake-up and this reads somewhat high."""
    return float(run["cpu"]["server_process_cpu"]) * 1e6 / float(run["rps"])


def _above_floor(floor: Mapping[str, Any], **servers: Mapping[str, Any]) -> dict[str, Any]:
    """Microseconds of CPU per hit each server spends above the floor's: for the gateway, what its
    own code costs per hit with the loop, the syscalls and loopback taken out; for nginx, which
    runs no Python loop, only a figure to compare with the gateway's."""
    floor_us = cpu_us_per_hit(floor)
    return {f"{name}_us_above_floor": cpu_us_per_hit(run) - floor_us for name, run in servers.items()}


def concurrency_curve(bench: Bench, gateway: Target, bare: Target) -> list[dict[str, Any]]:
    """7. Gateway hits and the bare app at 1, 8, 64 and 256 connections."""
    points = []
    for connections in CURVE_CONNECTIONS:
        bare_result = bench.measure(bare, connections, bench.plan.curve_seconds, bench.plan.warmup_seconds)
        gateway_result = bench.measure(gateway, connections, bench.plan.curve_seconds, bench.plan.warmup_seconds)
        points.append(
            {
                "connections": connections,
                "gateway": gateway_result,
                "bare": bare_result,
                **_ratios(gateway_result, bare_result),
            }
        )
    return points


# ---------------------------------------------------------------- 3: miss path


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(share * len(ordered) + 0.999999)))
    return ordered[rank - 1]


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Median, p99 and mean of latency samples (ms)."""
    return {
        "median_ms": statistics.median(samples),
        "p99_ms": percentile(samples, 0.99),
        "mean_ms": statistics.fmean(samples),
    }


async def _gateway_get(session: aiohttp.ClientSession, url: str) -> float:
    """Milliseconds for one gateway GET, body read; raises unless 200."""
    started_at = time.perf_counter()
    async with session.get(url, headers=AUTH) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {url} answered {response.status}")
    return (time.perf_counter() - started_at) * 1000


async def _direct_get(session: aiohttp.ClientSession, simulator_url: str, query: Sequence[tuple[str, str]]) -> float:
    """Milliseconds to sign (gateway.upstream.signing, the gateway's header set) and send one simulator request."""
    started_at = time.perf_counter()
    signed = signed_upstream_request(simulator_url, query)
    async with session.get(URL(simulator_url + signed.path_and_query, encoded=True), headers=signed.headers) as answer:
        await answer.read()
        if answer.status != 200:
            raise RuntimeError(f"direct simulator request answered {answer.status}")
    return (time.perf_counter() - started_at) * 1000


async def _miss_samples(live: LiveGateway, count: int, warmup: int = 10) -> tuple[list[float], list[float]]:
    """Interleaved pairs: a gateway miss for offset k, then that upstream query signed and sent directly."""
    gateway_ms: list[float] = []
    direct_ms: list[float] = []
    async with aiohttp.ClientSession() as to_gateway, aiohttp.ClientSession() as to_simulator:
        for k in range(1, count + warmup + 1):  # the first pairs warm connections up and are dropped
            url = f"{live.base_url}{LIST_PATH}?offset={k}&limit=10"
            gateway_sample = await _gateway_get(to_gateway, url)
            direct_sample = await _direct_get(to_simulator, live.simulator_url, (("limit", "10"), ("offset", str(k))))
            if k > warmup:
                gateway_ms.append(gateway_sample)
                direct_ms.append(direct_sample)
    return gateway_ms, direct_ms


def miss_path(live: LiveGateway, count: int) -> dict[str, Any]:
    """3. The gateway's added latency on a miss over calling the simulator directly, sequentially."""
    before = cache_counts(live.base_url)
    gateway_ms, direct_ms = asyncio.run(_miss_samples(live, count))
    gateway, direct = summary(gateway_ms), summary(direct_ms)
    print(f"  miss: gateway median {gateway['median_ms']:.2f} ms, direct {direct['median_ms']:.2f} ms", flush=True)
    return {
        "requests": len(gateway_ms),
        "gateway_cache_results": _delta(cache_counts(live.base_url), before),
        "gateway": gateway,
        "direct": direct,
        "added_median_ms": gateway["median_ms"] - direct["median_ms"],
        "added_p99_ms": gateway["p99_ms"] - direct["p99_ms"],
    }


# ---------------------------------------------------------------- 4: coalescing


async def _burst(url: str, headers: Mapping[str, str], count: int, warm_url: str) -> tuple[float, list[int]]:
    """``count`` concurrent GETs of one URL, each on its own already open connection.

    The connections are opened first (``count`` concurrent GETs of ``warm_url``), so the time
    measured is serving, not the listen backlog. Returns seconds until all answered, and statuses.
    """
    connector = aiohttp.TCPConnector(limit=count + 100, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def one(target: str) -> int:
            async with session.get(target, headers=headers) as response:
                await response.read()
                return response.status

        await asyncio.gather(*(one(warm_url) for _ in range(count)))
        started_at = time.perf_counter()
        statuses = await asyncio.gather(*(one(url) for _ in range(count)))
        return time.perf_counter() - started_at, list(statuses)


COALESCE_ROUNDS = 3


def coalescing(bench: Bench, live: LiveGateway, loop: str) -> dict[str, Any]:
    """4. ``plan.coalesce_requests`` concurrent cold requests for one key: upstream calls made,
    time to serve all; ``COALESCE_ROUNDS`` rounds, each on a key not asked before, median kept.

    Each request has its own connection, opened beforehand. The baseline is the same burst
    against the bare app serving the bytes the gateway served (the first round's 100-job page,
    gzip as the client accepts it), on already-open connections too, as many rounds: the ratio
    is the gateway's cost, not the page's size.
    """
    count = bench.plan.coalesce_requests
    paths = [f"{LIST_PATH}?offset={100 * index}&limit=100" for index in range(COALESCE_ROUNDS)]
    upstream_before, cache_before = upstream_calls(live.simulator_url), cache_counts(live.base_url)
    warm_url = live.base_url + "/healthz"
    rounds = [asyncio.run(_burst(live.base_url + path, AUTH, count, warm_url=warm_url)) for path in paths]
    calls = upstream_calls(live.simulator_url) - upstream_before
    cache_results = _delta(cache_counts(live.base_url), cache_before)
    workdir = bench.workdir / "burst-page"
    workdir.mkdir()
    payload = capture_payload(live, workdir, paths[0])
    with bare_app(workdir, bench.cpus, payload, loop) as (plain, gzipped):
        bare = gzipped or plain
        bare_rounds = [asyncio.run(_burst(bare.url, {}, count, warm_url=bare.url)) for _ in paths]
    seconds = statistics.median(elapsed for elapsed, _ in rounds)
    bare_seconds = statistics.median(elapsed for elapsed, _ in bare_rounds)
    print(
        f"  coalescing: {calls} upstream call(s) for {len(paths)} keys;"
        f" all served in {seconds:.3f} s (bare {bare_seconds:.3f} s), median of {len(paths)}"
    )
    return {
        "requests": count,
        "keys": len(paths),
        "ok": min(statuses.count(200) for _, statuses in rounds),
        "upstream_calls": calls / len(paths),
        "seconds_to_serve_all": seconds,
        "bare_seconds_to_serve_all": bare_seconds,
        "rounds_seconds": [elapsed for elapsed, _ in rounds],
        "bare_rounds_seconds": [elapsed for elapsed, _ in bare_rounds],
        "bare_ok": min(statuses.count(200) for _, statuses in bare_rounds),
        "bare_payload": payload.describe() | {"query": f"GET {paths[0]}"},
        "cache_results": cache_results,
        "connections": "one per request, opened before the burst",
    }


# ---------------------------------------------------------------- 5: memory

SORT_KEYS = ("create_time", "update_time", "asset_order")
SORT_DIRS = ("desc", "asc")


def fill_queries() -> Iterator[str]:
    """Distinct queries whose answers are full 100-job pages: every sort order, then the next offset."""
    for offset, sort_key, sort_dir in product(range(JOBS_PER_USER - 100 + 1), SORT_KEYS, SORT_DIRS):
        yield f"offset={offset}&limit=100&sort_key={sort_key}&sort_dir={sort_dir}"


async def _fill(base_url: str, queries: Iterator[str], target_bytes: int, workers: int = 4) -> tuple[int, int]:
    """GET the queries, a few at a time, until ``target_bytes`` of bodies arrived: (requests, bytes)."""
    received = {"requests": 0, "bytes": 0}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def worker() -> None:
            for query in queries:  # shared iterator: bounded by the number of distinct queries
                if received["bytes"] >= target_bytes:
                    return
                async with session.get(f"{base_url}{LIST_PATH}?{query}", headers=AUTH) as response:
                    body = await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"fill request answered {response.status}")
                received["requests"] += 1
                received["bytes"] += len(body)

        await asyncio.gather(*(worker() for _ in range(workers)))
    return received["requests"], received["bytes"]


def memory(bench: Bench) -> dict[str, Any]:
    """5. A fresh gateway's RSS with its cache filled with 100-job pages, over its RSS after start-up
    and one request; plus the gateway's own cache_bytes.

    The fill goes on past max_bytes (``fill_factor``), so evictions churn the heap as they would in
    service; the RSS when the bodies received first reached max_bytes is kept too.
    """
    max_bytes = bench.plan.memory_max_bytes
    with gateway_stack(bench.workdir / "memory", bench.cpus, max_bytes) as live:
        queries = fill_queries()
        http_get(f"{live.base_url}{LIST_PATH}?{next(queries)}", AUTH)
        baseline = rss_bytes(live.process.pid)
        requests, received = asyncio.run(_fill(live.base_url, queries, max_bytes))
        first_full = rss_bytes(live.process.pid)  # before eviction churn
        more, more_received = asyncio.run(_fill(live.base_url, queries, int(max_bytes * (bench.plan.fill_factor - 1))))
        requests, received = requests + more, received + more_received
        filled = rss_bytes(live.process.pid)
        text = http_get(live.base_url + "/metrics")[2].decode()
    cache_bytes = metric_sum(text, METRIC_PREFIX + "cache_bytes")
    entries = metric_sum(text, METRIC_PREFIX + "cache_entries")
    ratio = (filled - baseline) / max_bytes
    print(f"  memory: RSS {baseline / MiB:.1f} -> {filled / MiB:.1f} MiB, ratio {ratio:.2f}", flush=True)
    return {
        "max_bytes": max_bytes,
        "fill_requests": requests + 1,
        "fill_body_bytes_received": received,
        "rss_baseline_bytes": baseline,
        "rss_first_full_bytes": first_full,
        "rss_filled_bytes": filled,
        "ratio": ratio,
        "cache_bytes_metric": cache_bytes,
        "cache_entries_metric": entries,
        "cache_fill_share": cache_bytes / max_bytes,
        "per_entry": {
            "rss_growth_bytes": (filled - baseline) / max(1.0, entries),
            "accounted_bytes": cache_bytes / max(1.0, entries),
            "identity_body_bytes": received / max(1, requests),
        },
    }


# ---------------------------------------------------------------- 6: signing

SIGN_HOST = "metastudio.cn-north-4.myhuaweicloud.com"
SIGN_STAMP = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
SIGN_QUERY = (
    ("limit", "10"),
    ("offset", "20"),
    ("sort_dir", "desc"),
    ("sort_key", "create_time"),
    ("state", "JOB_SUCCESS,TRAINING"),
)
SIGN_HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": USER_AGENT,
    "X-Project-Id": PROJECT_ID,
    "X-App-UserId": APP_USER_ID,
}


def sign_ours() -> str:
    """One signature by gateway.upstream.signing (the gateway's header set); the Authorization value."""
    signed = sign(
        method="GET",
        host=SIGN_HOST,
        path=JOBS_PATH,
        query=list(SIGN_QUERY),
        headers=dict(SIGN_HEADERS),
        access_key=LIVE_AK,
        secret_key=LIVE_SK,
        timestamp=SIGN_STAMP,
    )
    return signed.headers["Authorization"]


def sdk_signer() -> Callable[[], str]:
    """A function signing the equivalent SdkRequest with huaweicloudsdkcore's Signer (set HOME first)."""
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.sdk_request import SdkRequest
    from huaweicloudsdkcore.signer.signer import Signer

    signer = Signer(BasicCredentials(LIVE_AK, LIVE_SK))
    extra = {"X-Sdk-Date": SIGN_STAMP.strftime("%Y%m%dT%H%M%SZ"), "Host": SIGN_HOST}

    def sign_sdk() -> str:
        request = SdkRequest(
            method="GET",
            schema="https",
            host=SIGN_HOST,
            resource_path=JOBS_PATH,
            query_params=list(SIGN_QUERY),
            header_params={**SIGN_HEADERS, **extra},
        )
        return str(signer.sign(request).header_params["Authorization"])

    return sign_sdk


def microseconds_per_call(functions: Sequence[Callable[[], object]], iterations: int, repeats: int = 7) -> list[float]:
    """Microseconds per call of each function: best of ``repeats`` timings of ``iterations`` calls,
    the functions taking turns, so a burst of outside load hits them alike."""
    best = [float("inf")] * len(functions)
    for _ in range(repeats):
        for index, function in enumerate(functions):
            started_at = time.perf_counter()
            for _ in range(iterations):
                function()
            best[index] = min(best[index], time.perf_counter() - started_at)
    return [seconds / iterations * 1e6 for seconds in best]


def signing(home: Path, iterations: int) -> dict[str, Any]:
    """6. Microseconds per signature, ours vs the official SDK's Signer on the same request."""
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(home)  # importing the SDK writes ~/.huaweicloud
    try:
        sign_sdk = sdk_signer()
        identical = sign_sdk() == sign_ours()
        ours, sdk = microseconds_per_call([sign_ours, sign_sdk], iterations)
    finally:
        if old_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old_home
    print(f"  signing: ours {ours:.1f} us, SDK {sdk:.1f} us, same Authorization: {identical}", flush=True)
    return {
        "ours_us": ours,
        "sdk_us": sdk,
        "ratio": ours / sdk,
        "identical_authorization": identical,
        "iterations": iterations,
        "sdk_version": version_of("huaweicloudsdkcore"),
    }
