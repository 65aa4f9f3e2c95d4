"""The performance harness: the gateway against the physical limit and a peer, in one run.

    python benchmarks/run.py            # full run, about 3-4 minutes
    python benchmarks/run.py --quick    # shorter durations, about 1 minute

Starts the simulator and the gateway (``metastudio-gateway serve``, real processes on loopback,
pinned to one core), a bare aiohttp app serving the gateway's exact bytes on the same event
loop, and Debian nginx with ``proxy_cache`` in front of the simulator; drives them with wrk
pinned to the other core. Prints one table and writes ``benchmarks/results/latest.json`` and
``benchmarks/results/concurrency.png``. Every comparison is a ratio measured in this run:

1. hit path: gateway cache hits vs the bare app (req/s, p50, p99; gzip too if the gateway serves it)
2. vs nginx proxy_cache, same query
3. miss path: the gateway's added latency over signing and calling the simulator directly
4. coalescing: 1000 concurrent cold requests for one key, upstream calls and time to serve all
5. memory: RSS with the cache filled to max_bytes with 100-job pages, over the start-up RSS
6. signing: microseconds per signature, ours vs the official SDK's Signer
7. concurrency curve: req/s and p99 at 1, 8, 64, 256 connections, gateway and bare app

Needs ``wrk``, ``nginx`` and ``taskset`` (Debian: ``apt-get install -y wrk nginx util-linux``)
and the ``bench`` extra (matplotlib, huaweicloudsdkcore).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import product
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from gateway.signing import SignedRequest, sign
from gateway.simulator.stack import ACME_KEY, LIVE_AK, LIVE_SK, LiveGateway, free_port, live_stack
from gateway.upstream import USER_AGENT

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PROJECT_ID = "sim-project"  # what live_stack gives the gateway
APP_USER_ID = "acme-web"
TENANTS = (("acme", APP_USER_ID, ACME_KEY),)
JOBS_PATH = f"/v1/{PROJECT_ID}/digital-human-training-manage/user/jobs"
LIST_PATH = "/v1/training-jobs"
# The benchmark query: the default list (offset 0, limit 10), as the gateway sends it upstream.
HIT_UPSTREAM_QUERY = (("limit", "10"), ("offset", "0"))
JOBS_PER_USER = 1000  # enough for hundreds of distinct full 100-job pages
CURVE_CONNECTIONS = (1, 8, 64, 256)
HIT_CONNECTIONS = 50
SORT_KEYS = ("create_time", "update_time", "asset_order")
SORT_DIRS = ("desc", "asc")
METRIC_PREFIX = "metastudio_gateway_"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """How long and how much to measure (full run or ``--quick``)."""

    warmup_seconds: int
    hit_seconds: int
    curve_seconds: int
    miss_requests: int
    coalesce_requests: int
    memory_max_bytes: int
    signing_iterations: int
    fill_factor: float = 1.3


FULL = Plan(
    warmup_seconds=2,
    hit_seconds=10,
    curve_seconds=5,
    miss_requests=300,
    coalesce_requests=1000,
    memory_max_bytes=64 * MiB,
    signing_iterations=20_000,
)
QUICK = Plan(
    warmup_seconds=1,
    hit_seconds=3,
    curve_seconds=2,
    miss_requests=100,
    coalesce_requests=1000,
    memory_max_bytes=16 * MiB,
    signing_iterations=3_000,
)


@dataclass(frozen=True)
class Cpus:
    """Which core the servers run on and which one the load generator and this script use."""

    server: int
    client: int

    def server_wrap(self) -> tuple[str, ...]:
        """The command prefix that pins a server to its core."""
        return ("taskset", "-c", str(self.server))

    def client_wrap(self) -> tuple[str, ...]:
        """The command prefix that pins the load generator to its core."""
        return ("taskset", "-c", str(self.client))


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    target: str
    connections: int
    seconds: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx: int


@dataclass
class Context:
    """Everything the measurements share: plan, cores, scratch directory, targets."""

    plan: Plan
    cpus: Cpus
    workdir: Path
    live: LiveGateway | None = None
    bare_url: str = ""
    nginx_url: str = ""
    loop: str = "asyncio"
    payload: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- machine


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def version_of(distribution: str) -> str | None:
    """An installed distribution's version, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def tool_version(command: Sequence[str]) -> str:
    """The first output line of a ``--version``-style command."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else "?"


def machine_info(loop: str) -> dict[str, Any]:
    """The machine and software this run measured."""
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "aiohttp": version_of("aiohttp"),
        "uvloop": version_of("uvloop"),
        "gateway_event_loop": loop,
        "wrk": tool_version(["wrk", "-v"]),
        "nginx": tool_version(["nginx", "-v"]),
    }


# ---------------------------------------------------------------- processes and HTTP


def http_get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One blocking GET (no automatic decompression): status, headers, raw body."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def wait_until_up(url: str, process: subprocess.Popen[bytes], seconds: float = 20.0) -> None:
    """Poll ``url`` until it answers anything below 500; fail if the process dies or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            if http_get(url)[0] < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process we started, by its PID: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def started(command: Sequence[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` (output to ``log``) until the block ends; yields once ``ready_url`` answers."""
    with log.open("wb") as sink:
        process = subprocess.Popen(list(command), stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_until_up(ready_url, process)
            yield process
        finally:
            stop(process)


def auth_headers() -> dict[str, str]:
    """The Authorization header of the benchmark tenant."""
    return {"Authorization": f"Bearer {ACME_KEY}"}


def metrics_text(base_url: str) -> str:
    """The gateway's /metrics page."""
    return http_get(base_url + "/metrics")[2].decode()


def metric_sum(text: str, name: str, label: str = "") -> float:
    """Sum of the samples of ``name`` (full name, prefix included) whose labels contain ``label``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " ") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def cache_counts(base_url: str) -> dict[str, float]:
    """The gateway's cache results so far: hit, miss, stale, coalesced."""
    text = metrics_text(base_url)
    name = METRIC_PREFIX + "cache_requests_total"
    return {result: metric_sum(text, name, f'result="{result}"') for result in ("hit", "miss", "stale", "coalesced")}


def rss_bytes(pid: int) -> int:
    """A process's resident set size (VmRSS) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def loop_of(pid: int) -> str:
    """``uvloop`` if the process has uvloop's extension mapped, else ``asyncio``."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "uvloop" if "uvloop" in maps else "asyncio"


def simulator_requests(simulator_url: str) -> int:
    """How many jobs requests the simulator has received so far."""
    return int(json.loads(http_get(simulator_url + "/_simulator/stats")[2])["requests"])


# ---------------------------------------------------------------- wrk

_LATENCY_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk_script(workdir: Path, headers: Mapping[str, str]) -> Path:
    """A wrk Lua script that sets ``headers`` on every request (one file per header set)."""
    lines = [f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}" for name, value in sorted(headers.items())]
    path = workdir / f"wrk-{hashlib.sha256(repr(lines).encode()).hexdigest()[:12]}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def _latency_ms(output: str, percent: str) -> float:
    """A percentile from wrk's ``--latency`` distribution, in milliseconds."""
    match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    if match is None:
        raise ValueError(f"no {percent}% latency in wrk output:\n{output}")
    return float(match.group(1)) * _LATENCY_UNITS[match.group(2)]


def _count(output: str, pattern: str) -> int:
    """Sum of the integers a regex finds in wrk's output (0 when absent)."""
    return sum(int(value) for value in re.findall(pattern, output))


def parse_wrk(output: str, target: str, connections: int, seconds: int) -> WrkResult:
    """Requests/s, p50, p99 and error counts out of wrk's text output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    requests = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    if rps is None or requests is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    return WrkResult(
        target=target,
        connections=connections,
        seconds=seconds,
        requests=int(requests.group(1)),
        rps=float(rps.group(1)),
        p50_ms=_latency_ms(output, "50"),
        p99_ms=_latency_ms(output, "99"),
        socket_errors=_count(output, r"(?:connect|read|write|timeout) (\d+)"),
        non_2xx=_count(output, r"Non-2xx or 3xx responses: (\d+)"),
    )


def run_wrk(
    ctx: Context, url: str, *, target: str, connections: int, seconds: int, headers: Mapping[str, str]
) -> WrkResult:
    """One wrk run (one thread, pinned to the client core) against ``url``."""
    command = [
        *ctx.cpus.client_wrap(),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(wrk_script(ctx.workdir, headers)),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)
    return parse_wrk(done.stdout, target, connections, seconds)


def measure(
    ctx: Context, url: str, *, target: str, connections: int, seconds: int, headers: Mapping[str, str]
) -> WrkResult:
    """A warm-up run at the same settings, then the measured run."""
    run_wrk(ctx, url, target=target, connections=connections, seconds=ctx.plan.warmup_seconds, headers=headers)
    result = run_wrk(ctx, url, target=target, connections=connections, seconds=seconds, headers=headers)
    print(
        f"  {target:<14} c={connections:<4} {result.rps:>9.0f} req/s  "
        f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms",
        flush=True,
    )
    return result


# ---------------------------------------------------------------- targets


def gateway_config(max_bytes: int) -> str:
    """The gateway's TOML (tenants are added by live_stack): long TTL, no rate limit."""
    return (
        f"[cache]\nttl_seconds = 3600\nmax_bytes = {max_bytes}\n\n"
        "[rate_limit]\nrequests_per_second = 0\n\n"
        "[server]\ndrain_seconds = 0\n"
    )


@contextlib.contextmanager
def gateway_stack(ctx: Context, name: str, max_bytes: int) -> Iterator[LiveGateway]:
    """Simulator + gateway (one tenant), both pinned to the server core."""
    workdir = ctx.workdir / name
    workdir.mkdir()
    with live_stack(
        workdir,
        extra_config=gateway_config(max_bytes),
        wrap=ctx.cpus.server_wrap(),
        simulator_args=("--jobs-per-user", str(JOBS_PER_USER)),
        tenants=TENANTS,
    ) as live:
        yield live


def capture_payload(ctx: Context, live: LiveGateway) -> dict[str, Any]:
    """Warm the benchmark key and record exactly what a cache hit sends (identity and gzip)."""
    url = live.base_url + LIST_PATH
    http_get(url, auth_headers())  # the miss that fills the cache
    status, headers, body = http_get(url, auth_headers())
    if status != 200 or headers.get("X-Cache") != "HIT":
        raise RuntimeError(f"expected a 200 cache hit, got {status} X-Cache={headers.get('X-Cache')}")
    _, gz_headers, gz_body = http_get(url, {**auth_headers(), "Accept-Encoding": "gzip"})
    gzip_served = gz_headers.get("Content-Encoding") == "gzip"
    (ctx.workdir / "body").write_bytes(body)
    if gzip_served:
        (ctx.workdir / "body.gz").write_bytes(gz_body)
        if gzip.decompress(gz_body) != body:
            raise RuntimeError("the gateway's gzip body does not decompress to its identity body")
    return {
        "query": "GET /v1/training-jobs (offset 0, limit 10)",
        "content_type": headers["Content-Type"],
        "bytes": len(body),
        "gzip_bytes": len(gz_body) if gzip_served else None,
        "gateway_headers": sorted(headers),
    }


@contextlib.contextmanager
def bare_app(ctx: Context) -> Iterator[str]:
    """The bare aiohttp app serving the captured bytes on the gateway's event loop; yields its URL."""
    port = free_port()
    command = [
        *ctx.cpus.server_wrap(),
        sys.executable,
        str(BENCH_DIR / "bare_app.py"),
        "--port",
        str(port),
        "--body",
        str(ctx.workdir / "body"),
        "--content-type",
        ctx.payload["content_type"],
        "--loop",
        ctx.loop,
    ]
    if ctx.payload["gzip_bytes"] is not None:
        command += ["--gzip-body", str(ctx.workdir / "body.gz")]
    url = f"http://127.0.0.1:{port}"
    with started(command, ctx.workdir / "bare.log", url + "/"):
        if http_get(url + "/")[2] != (ctx.workdir / "body").read_bytes():
            raise RuntimeError("the bare app does not serve the gateway's bytes")
        yield url


def signed_upstream_request(simulator_url: str, query: Sequence[tuple[str, str]]) -> SignedRequest:
    """A jobs request signed now, with exactly the header set the gateway's client sends."""
    return sign(
        method="GET",
        host=urlsplit(simulator_url).netloc,
        path=JOBS_PATH,
        query=query,
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Project-Id": PROJECT_ID,
            "X-App-UserId": APP_USER_ID,
        },
        access_key=LIVE_AK,
        secret_key=LIVE_SK,
        timestamp=datetime.now(UTC),
    )


def _nginx_quote(value: str) -> str:
    """A header value as an nginx string literal (refusing characters nginx would interpret)."""
    if any(char in value for char in '"$\\'):
        raise ValueError(f"cannot put {value!r} into nginx.conf")
    return f'"{value}"'


def nginx_config(prefix: Path, port: int, cpu: int, simulator_url: str) -> str:
    """nginx.conf from the template: loopback, one worker on ``cpu``, pre-signed upstream request."""
    signed = signed_upstream_request(simulator_url, HIT_UPSTREAM_QUERY)
    header_lines = "\n".join(
        f"            proxy_set_header {name} {_nginx_quote(value)};" for name, value in signed.headers.items()
    )
    user = ""
    if os.geteuid() == 0:  # the master runs as root: keep the workers on the current user too
        import grp
        import pwd

        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
    replacements = {
        "@CPU_MASK@": format(1 << cpu, "b"),
        "@USER_DIRECTIVE@": user,
        "@PREFIX@": str(prefix),
        "@PORT@": str(port),
        "@UPSTREAM@": simulator_url,
        "@SIGNED_PATH@": signed.path_and_query,
        "@SIGNED_HEADERS@": header_lines,
    }
    text = (BENCH_DIR / "nginx.conf.template").read_text()
    for placeholder, value in replacements.items():
        text = text.replace(placeholder, value)
    return text


@contextlib.contextmanager
def nginx(ctx: Context, simulator_url: str) -> Iterator[str]:
    """Debian nginx with proxy_cache in front of the simulator, warmed; yields its URL."""
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    prefix = ctx.workdir / "nginx"
    prefix.mkdir()
    port = free_port()
    config = prefix / "nginx.conf"
    config.write_text(nginx_config(prefix, port, ctx.cpus.server, simulator_url))
    command = [
        *ctx.cpus.server_wrap(),
        nginx_bin,
        "-p",
        str(prefix),
        "-c",
        str(config),
        "-e",
        str(prefix / "error.log"),
    ]
    url = f"http://127.0.0.1:{port}"
    with started(command, prefix / "stdout.log", url + "/"):
        first = http_get(url + LIST_PATH)
        second = http_get(url + LIST_PATH)
        if first[0] != 200 or second[1].get("X-Cache") != "HIT":
            raise RuntimeError(f"nginx did not cache: {first[0]} {first[2][:200]!r}, then {second[1]}")
        ctx.payload["nginx_bytes"] = len(second[2])
        yield url


# ---------------------------------------------------------------- 1, 2, 7: wrk measurements


def hit_path(ctx: Context) -> dict[str, Any]:
    """Gateway cache hits vs the bare app at wrk -t1 -c50 (and the gzip variants, if served)."""
    assert ctx.live is not None
    gateway_url = ctx.live.base_url + LIST_PATH
    seconds, c = ctx.plan.hit_seconds, HIT_CONNECTIONS
    before = cache_counts(ctx.live.base_url)
    bare = measure(ctx, ctx.bare_url + "/", target="bare aiohttp", connections=c, seconds=seconds, headers={})
    gateway = measure(ctx, gateway_url, target="gateway", connections=c, seconds=seconds, headers=auth_headers())
    after = cache_counts(ctx.live.base_url)
    result: dict[str, Any] = {
        "gateway": asdict(gateway),
        "bare": asdict(bare),
        "rps_ratio": gateway.rps / bare.rps,
        "p50_ratio": gateway.p50_ms / bare.p50_ms,
        "p99_ratio": gateway.p99_ms / bare.p99_ms,
        "gateway_cache_results_during_runs": {k: after[k] - before[k] for k in after},
        "gzip": None,
    }
    if ctx.payload["gzip_bytes"] is not None:
        result["gzip"] = gzip_hit_path(ctx, gateway_url)
    return result


def gzip_hit_path(ctx: Context, gateway_url: str) -> dict[str, Any]:
    """Gateway gzip hits (``Accept-Encoding: gzip``) vs the bare app serving the same gzip bytes."""
    seconds, c = ctx.plan.hit_seconds, HIT_CONNECTIONS
    accept = {"Accept-Encoding": "gzip"}
    bare = measure(ctx, ctx.bare_url + "/gzip", target="bare gzip", connections=c, seconds=seconds, headers=accept)
    gateway = measure(
        ctx, gateway_url, target="gateway gzip", connections=c, seconds=seconds, headers={**auth_headers(), **accept}
    )
    return {"gateway": asdict(gateway), "bare": asdict(bare), "rps_ratio": gateway.rps / bare.rps}


def versus_nginx(ctx: Context, gateway: dict[str, Any]) -> dict[str, Any]:
    """nginx proxy_cache serving the same query, at the same wrk settings as the hit path."""
    result = measure(
        ctx,
        ctx.nginx_url + LIST_PATH,
        target="nginx cache",
        connections=HIT_CONNECTIONS,
        seconds=ctx.plan.hit_seconds,
        headers=auth_headers(),
    )
    return {
        "nginx": asdict(result),
        "rps_ratio": gateway["rps"] / result.rps,
        "p50_ratio": gateway["p50_ms"] / result.p50_ms,
        "p99_ratio": gateway["p99_ms"] / result.p99_ms,
    }


def concurrency_curve(ctx: Context) -> list[dict[str, Any]]:
    """Gateway hits and the bare app at each connection count of the curve."""
    assert ctx.live is not None
    points = []
    for connections in CURVE_CONNECTIONS:
        seconds = ctx.plan.curve_seconds
        bare = measure(
            ctx, ctx.bare_url + "/", target="bare aiohttp", connections=connections, seconds=seconds, headers={}
        )
        gateway = measure(
            ctx,
            ctx.live.base_url + LIST_PATH,
            target="gateway",
            connections=connections,
            seconds=seconds,
            headers=auth_headers(),
        )
        points.append(
            {
                "connections": connections,
                "gateway": asdict(gateway),
                "bare": asdict(bare),
                "rps_ratio": gateway.rps / bare.rps,
            }
        )
    return points


# ---------------------------------------------------------------- 3, 4, 5: aiohttp client measurements


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


async def timed_get(session: aiohttp.ClientSession, url: URL | str, headers: Mapping[str, str]) -> float:
    """Milliseconds for one GET, body read; raises unless 200."""
    started_at = time.perf_counter()
    async with session.get(url, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {url} answered {response.status}")
    return (time.perf_counter() - started_at) * 1000


async def direct_get(session: aiohttp.ClientSession, simulator_url: str, query: Sequence[tuple[str, str]]) -> float:
    """Milliseconds to sign (gateway.signing, the gateway's header set) and send one simulator request."""
    started_at = time.perf_counter()
    signed = signed_upstream_request(simulator_url, query)
    url = URL(simulator_url + signed.path_and_query, encoded=True)
    async with session.get(url, headers=signed.headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"direct simulator request answered {response.status}")
    return (time.perf_counter() - started_at) * 1000


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Median, p99 and mean of latency samples (ms)."""
    return {
        "median_ms": statistics.median(samples),
        "p99_ms": percentile(samples, 0.99),
        "mean_ms": statistics.fmean(samples),
    }


async def _miss_samples(live: LiveGateway, count: int) -> tuple[list[float], list[float]]:
    """Interleaved: gateway miss for offset k, then the same upstream query signed and sent directly."""
    gateway_ms: list[float] = []
    direct_ms: list[float] = []
    async with aiohttp.ClientSession() as gw_session, aiohttp.ClientSession() as sim_session:
        for k in range(1, count + 11):  # the first 10 pairs warm connections up and are dropped
            query = (("limit", "10"), ("offset", str(k)))
            gateway_sample = await timed_get(
                gw_session, f"{live.base_url}{LIST_PATH}?offset={k}&limit=10", auth_headers()
            )
            direct_sample = await direct_get(sim_session, live.simulator_url, query)
            if k > 10:
                gateway_ms.append(gateway_sample)
                direct_ms.append(direct_sample)
    return gateway_ms, direct_ms


def miss_path(ctx: Context) -> dict[str, Any]:
    """The gateway's added latency on a miss over calling the simulator directly (sequential)."""
    assert ctx.live is not None
    before = cache_counts(ctx.live.base_url)
    gateway_ms, direct_ms = asyncio.run(_miss_samples(ctx.live, ctx.plan.miss_requests))
    misses = cache_counts(ctx.live.base_url)["miss"] - before["miss"]
    gateway, direct = summary(gateway_ms), summary(direct_ms)
    print(f"  miss: gateway median {gateway['median_ms']:.2f} ms, direct {direct['median_ms']:.2f} ms", flush=True)
    return {
        "requests": len(gateway_ms),
        "gateway_misses_counted": misses,
        "gateway": gateway,
        "direct": direct,
        "added_median_ms": gateway["median_ms"] - direct["median_ms"],
        "added_p99_ms": gateway["p99_ms"] - direct["p99_ms"],
    }


async def _burst(url: str, count: int) -> tuple[float, list[int]]:
    """``count`` concurrent GETs of one URL; seconds until all were answered, and their statuses."""
    connector = aiohttp.TCPConnector(limit=count + 100)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> int:
            async with session.get(url, headers=auth_headers()) as response:
                await response.read()
                return response.status

        started_at = time.perf_counter()
        statuses = await asyncio.gather(*(one() for _ in range(count)))
        return time.perf_counter() - started_at, list(statuses)


def coalescing(ctx: Context) -> dict[str, Any]:
    """1000 concurrent cold requests for one key: upstream calls made and time to serve all."""
    assert ctx.live is not None
    url = f"{ctx.live.base_url}{LIST_PATH}?offset=0&limit=100"
    upstream_before = simulator_requests(ctx.live.simulator_url)
    cache_before = cache_counts(ctx.live.base_url)
    seconds, statuses = asyncio.run(_burst(url, ctx.plan.coalesce_requests))
    upstream_calls = simulator_requests(ctx.live.simulator_url) - upstream_before
    cache_after = cache_counts(ctx.live.base_url)
    print(f"  coalescing: {upstream_calls} upstream call(s), all served in {seconds:.3f} s", flush=True)
    return {
        "requests": len(statuses),
        "ok": statuses.count(200),
        "upstream_calls": upstream_calls,
        "seconds_to_serve_all": seconds,
        "cache_results": {k: cache_after[k] - cache_before[k] for k in cache_after},
    }


def fill_queries(max_keys: int) -> Iterator[str]:
    """Distinct queries for full 100-job pages: every sort, then offsets, bounded by ``max_keys``."""
    combos = product(range(JOBS_PER_USER - 100 + 1), SORT_KEYS, SORT_DIRS)
    for index, (offset, sort_key, sort_dir) in enumerate(combos):
        if index >= max_keys:
            return
        yield f"offset={offset}&limit=100&sort_key={sort_key}&sort_dir={sort_dir}"


async def _fill(base_url: str, queries: Iterator[str], target_bytes: int, workers: int = 4) -> tuple[int, int]:
    """GET queries (a few at a time) until ``target_bytes`` of bodies were received; (requests, bytes)."""
    received = {"requests": 0, "bytes": 0}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def worker() -> None:
            for query in queries:
                if received["bytes"] >= target_bytes:
                    return
                async with session.get(f"{base_url}{LIST_PATH}?{query}", headers=auth_headers()) as response:
                    body = await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"fill request answered {response.status}")
                received["requests"] += 1
                received["bytes"] += len(body)

        await asyncio.gather(*(worker() for _ in range(workers)))
    return received["requests"], received["bytes"]


def memory(ctx: Context) -> dict[str, Any]:
    """RSS with the cache filled past max_bytes with 100-job pages, over the RSS after start-up + 1 request."""
    max_bytes = ctx.plan.memory_max_bytes
    with gateway_stack(ctx, "memory", max_bytes) as live:
        queries = fill_queries(max_keys=20_000)
        first = next(queries)
        http_get(f"{live.base_url}{LIST_PATH}?{first}", auth_headers())
        baseline = rss_bytes(live.process.pid)
        requests, received = asyncio.run(_fill(live.base_url, queries, int(max_bytes * ctx.plan.fill_factor)))
        filled = rss_bytes(live.process.pid)
        text = metrics_text(live.base_url)
        cache_bytes = metric_sum(text, METRIC_PREFIX + "cache_bytes")
        entries = metric_sum(text, METRIC_PREFIX + "cache_entries")
    ratio = (filled - baseline) / max_bytes
    print(f"  memory: RSS {baseline / MiB:.1f} -> {filled / MiB:.1f} MiB, ratio {ratio:.2f}", flush=True)
    return {
        "max_bytes": max_bytes,
        "fill_requests": requests + 1,
        "fill_body_bytes_received": received,
        "rss_baseline_bytes": baseline,
        "rss_filled_bytes": filled,
        "ratio": ratio,
        "cache_bytes_metric": cache_bytes,
        "cache_entries_metric": entries,
        "cache_fill_share": cache_bytes / max_bytes,
    }


# ---------------------------------------------------------------- 6: signing

SIGN_QUERY = (
    ("limit", "10"),
    ("offset", "20"),
    ("sort_dir", "desc"),
    ("sort_key", "create_time"),
    ("state", "JOB_SUCCESS,TRAINING"),
)
SIGN_HOST = "metastudio.cn-north-4.myhuaweicloud.com"
SIGN_STAMP = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def _sign_ours() -> str:
    """One signature by gateway.signing, the gateway's header set; returns the Authorization value."""
    signed = sign(
        method="GET",
        host=SIGN_HOST,
        path=JOBS_PATH,
        query=list(SIGN_QUERY),
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Project-Id": PROJECT_ID,
            "X-App-UserId": APP_USER_ID,
        },
        access_key=LIVE_AK,
        secret_key=LIVE_SK,
        timestamp=SIGN_STAMP,
    )
    return signed.headers["Authorization"]


def _sdk_signer() -> Callable[[], str]:
    """A function signing the equivalent SdkRequest with huaweicloudsdkcore's Signer."""
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.sdk_request import SdkRequest
    from huaweicloudsdkcore.signer.signer import Signer

    signer = Signer(BasicCredentials(LIVE_AK, LIVE_SK))
    stamp = SIGN_STAMP.strftime("%Y%m%dT%H%M%SZ")

    def sign_sdk() -> str:
        request = SdkRequest(
            method="GET",
            schema="https",
            host=SIGN_HOST,
            resource_path=JOBS_PATH,
            query_params=list(SIGN_QUERY),
            header_params={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Project-Id": PROJECT_ID,
                "X-App-UserId": APP_USER_ID,
                "X-Sdk-Date": stamp,
                "Host": SIGN_HOST,
            },
        )
        return str(signer.sign(request).header_params["Authorization"])

    return sign_sdk


def microseconds_per_call(function: Callable[[], object], iterations: int, repeats: int = 5) -> float:
    """Best of ``repeats`` timings of ``iterations`` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(repeats):
        started_at = time.perf_counter()
        for _ in range(iterations):
            function()
        best = min(best, time.perf_counter() - started_at)
    return best / iterations * 1e6


def signing(ctx: Context) -> dict[str, Any]:
    """Microseconds per signature: ours vs the official SDK's Signer, same request (HOME in scratch)."""
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(ctx.workdir)  # importing the SDK writes ~/.huaweicloud
    try:
        sign_sdk = _sdk_signer()
        identical = sign_sdk() == _sign_ours()
        ours = microseconds_per_call(_sign_ours, ctx.plan.signing_iterations)
        sdk = microseconds_per_call(sign_sdk, ctx.plan.signing_iterations)
    finally:
        if old_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old_home
    print(f"  signing: ours {ours:.1f} us, SDK {sdk:.1f} us", flush=True)
    return {
        "ours_us": ours,
        "sdk_us": sdk,
        "ratio": ours / sdk,
        "identical_authorization": identical,
        "iterations": ctx.plan.signing_iterations,
        "sdk_version": version_of("huaweicloudsdkcore"),
    }


# ---------------------------------------------------------------- report


def _fmt(value: float, digits: int = 2) -> str:
    """A number for the table."""
    return f"{value:,.{digits}f}"


def table_rows(results: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measurement, gateway, baseline, ratio) rows of the one table."""
    hit, ngx, miss = results["hit"], results["nginx"], results["miss"]
    loop = results["machine"]["gateway_event_loop"]
    g, b = hit["gateway"], hit["bare"]
    rows = [
        (
            f"1 hit req/s, c{HIT_CONNECTIONS} (vs bare aiohttp, {loop})",
            _fmt(g["rps"], 0),
            _fmt(b["rps"], 0),
            f"{hit['rps_ratio']:.2f}x",
        ),
        ("1 hit p50 ms", _fmt(g["p50_ms"]), _fmt(b["p50_ms"]), f"{hit['p50_ratio']:.2f}x"),
        ("1 hit p99 ms", _fmt(g["p99_ms"]), _fmt(b["p99_ms"]), f"{hit['p99_ratio']:.2f}x"),
    ]
    if hit["gzip"] is not None:
        gz = hit["gzip"]
        rows.append(
            (
                "1 gzip hit req/s (vs bare, same gzip bytes)",
                _fmt(gz["gateway"]["rps"], 0),
                _fmt(gz["bare"]["rps"], 0),
                f"{gz['rps_ratio']:.2f}x",
            )
        )
    else:
        rows.append(("1 gzip hit req/s", "not served", "-", "-"))
    n = ngx["nginx"]
    rows += [
        ("2 hit req/s (vs nginx proxy_cache)", _fmt(g["rps"], 0), _fmt(n["rps"], 0), f"{ngx['rps_ratio']:.2f}x"),
        (
            "2 hit p50 / p99 ms (vs nginx)",
            f"{g['p50_ms']:.2f} / {g['p99_ms']:.2f}",
            f"{n['p50_ms']:.2f} / {n['p99_ms']:.2f}",
            f"{ngx['p50_ratio']:.2f}x / {ngx['p99_ratio']:.2f}x",
        ),
        (
            f"3 miss median ms (vs direct signed call, n={miss['requests']})",
            _fmt(miss["gateway"]["median_ms"]),
            _fmt(miss["direct"]["median_ms"]),
            f"+{miss['added_median_ms']:.2f} ms",
        ),
        (
            "3 miss p99 ms",
            _fmt(miss["gateway"]["p99_ms"]),
            _fmt(miss["direct"]["p99_ms"]),
            f"+{miss['added_p99_ms']:.2f} ms",
        ),
    ]
    return rows + _more_rows(results)


def _more_rows(results: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """Table rows for coalescing, memory, signing and the concurrency curve."""
    co, mem, sig = results["coalescing"], results["memory"], results["signing"]
    rows = [
        (
            f"4 coalescing: upstream calls for {co['requests']} cold requests",
            str(co["upstream_calls"]),
            "must be 1",
            "ok" if co["upstream_calls"] == 1 and co["ok"] == co["requests"] else "FAIL",
        ),
        ("4 coalescing: seconds to serve all", _fmt(co["seconds_to_serve_all"], 3), "-", "-"),
        (
            f"5 memory: RSS MiB filled (vs start-up), max_bytes {mem['max_bytes'] // MiB} MiB",
            _fmt(mem["rss_filled_bytes"] / MiB, 1),
            _fmt(mem["rss_baseline_bytes"] / MiB, 1),
            f"{mem['ratio']:.2f} (<= 1.5)",
        ),
        (
            "5 memory: cache_bytes metric MiB (share of max_bytes)",
            _fmt(mem["cache_bytes_metric"] / MiB, 1),
            "-",
            f"{mem['cache_fill_share']:.2f}",
        ),
        (
            "6 signing us/signature (vs huaweicloudsdkcore Signer)",
            _fmt(sig["ours_us"], 1),
            _fmt(sig["sdk_us"], 1),
            f"{sig['ratio']:.2f}x",
        ),
    ]
    for point in results["concurrency"]:
        g, b, c = point["gateway"], point["bare"], point["connections"]
        rows.append((f"7 c={c} req/s (vs bare)", _fmt(g["rps"], 0), _fmt(b["rps"], 0), f"{point['rps_ratio']:.2f}x"))
        rows.append((f"7 c={c} p99 ms", _fmt(g["p99_ms"]), _fmt(b["p99_ms"]), f"{g['p99_ms'] / b['p99_ms']:.2f}x"))
    return rows


def render_table(rows: Sequence[tuple[str, str, str, str]]) -> str:
    """A Markdown table (readable as plain text too)."""
    header = ("measurement", "gateway", "baseline", "ratio")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "| " + " | ".join([first, *rest]) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def warnings_of(results: Mapping[str, Any]) -> list[str]:
    """Anything that makes a figure suspect: wrk errors, misses during hit runs, a cache not full."""
    problems = []
    runs = [results["hit"]["gateway"], results["hit"]["bare"], results["nginx"]["nginx"]]
    runs += [point[name] for point in results["concurrency"] for name in ("gateway", "bare")]
    if results["hit"]["gzip"] is not None:
        runs += [results["hit"]["gzip"]["gateway"], results["hit"]["gzip"]["bare"]]
    for run in runs:
        if run["socket_errors"] or run["non_2xx"]:
            problems.append(
                f"{run['target']} c={run['connections']}: {run['socket_errors']} socket errors, "
                f"{run['non_2xx']} non-2xx"
            )
    misses = results["hit"]["gateway_cache_results_during_runs"]["miss"]
    if misses:
        problems.append(f"{misses:.0f} cache misses during the hit runs")
    if results["memory"]["cache_fill_share"] < 0.9:
        problems.append(f"cache only {results['memory']['cache_fill_share']:.0%} full in the memory test")
    return problems


def chart(results: Mapping[str, Any], path: Path) -> None:
    """req/s and p99 vs connections, gateway and bare app, as a two-panel PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = results["concurrency"]
    connections = [point["connections"] for point in points]
    figure, (rps_axis, p99_axis) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for name, label, style in (("bare", "bare aiohttp (same bytes)", "s--"), ("gateway", "gateway cache hit", "o-")):
        rps_axis.plot(connections, [point[name]["rps"] for point in points], style, label=label)
        p99_axis.plot(connections, [point[name]["p99_ms"] for point in points], style, label=label)
    for axis, title, unit in ((rps_axis, "throughput", "requests/s"), (p99_axis, "p99 latency", "ms")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(connections, [str(c) for c in connections])
        axis.set_xlabel("connections (wrk -t1)")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend()
    rps_axis.set_ylim(bottom=0)
    p99_axis.set_yscale("log")
    machine = results["machine"]
    figure.suptitle(
        f"metastudio-gateway hit path vs bare aiohttp ({machine['gateway_event_loop']}), "
        f"{machine['cpu_model']}, server and wrk on separate cores",
        fontsize=9,
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ---------------------------------------------------------------- main


def pin_self(cpus: Cpus) -> None:
    """Run this script (the aiohttp client measurements) on the client core."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {cpus.client})


def check_tools() -> None:
    """Fail early, with the install command, when a needed tool is missing."""
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        missing.append("nginx")
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)} (Debian: apt-get install -y wrk nginx util-linux)")


def run_all(ctx: Context) -> dict[str, Any]:
    """Every measurement, in an order that keeps them independent; returns the results."""
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        print("starting simulator + gateway", flush=True)
        ctx.live = stack.enter_context(gateway_stack(ctx, "main", max_bytes=1 << 30))
        ctx.loop = loop_of(ctx.live.process.pid)
        ctx.payload = capture_payload(ctx, ctx.live)
        ctx.bare_url = stack.enter_context(bare_app(ctx))
        ctx.nginx_url = stack.enter_context(nginx(ctx, ctx.live.simulator_url))
        results["machine"] = machine_info(ctx.loop)
        print("1. hit path (vs bare aiohttp)", flush=True)
        results["hit"] = hit_path(ctx)
        print("2. vs nginx proxy_cache", flush=True)
        results["nginx"] = versus_nginx(ctx, results["hit"]["gateway"])
        print("7. concurrency curve", flush=True)
        results["concurrency"] = concurrency_curve(ctx)
        print("3. miss path", flush=True)
        results["miss"] = miss_path(ctx)
        print("4. coalescing", flush=True)
        results["coalescing"] = coalescing(ctx)
    print("5. memory", flush=True)
    results["memory"] = memory(ctx)
    print("6. signing", flush=True)
    results["signing"] = signing(ctx)
    results["payload"] = ctx.payload
    return results


def write_results(results: dict[str, Any], out: Path) -> str:
    """Write latest.json and concurrency.png into ``out``; returns the table text."""
    out.mkdir(parents=True, exist_ok=True)
    table = render_table(table_rows(results))
    results["table"] = table.splitlines()
    results["warnings"] = warnings_of(results)
    (out / "latest.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    chart(results, out / "concurrency.png")
    return table


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter durations (about a minute)")
    parser.add_argument("--server-cpu", type=int, default=0, help="core for the servers (default 0)")
    parser.add_argument("--client-cpu", type=int, default=1, help="core for wrk and this script (default 1)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="where to write JSON and PNG")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every measurement, print the table, write the results."""
    args = parse_args(argv)
    check_tools()
    cpus = Cpus(server=args.server_cpu, client=args.client_cpu)
    plan = QUICK if args.quick else FULL
    pin_self(cpus)
    os.chdir(REPO_ROOT)  # the servers run this checkout's gateway package
    started_at = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as scratch:
        results = run_all(Context(plan=plan, cpus=cpus, workdir=Path(scratch)))
    results["run"] = {
        "command": "python benchmarks/run.py" + (" --quick" if args.quick else ""),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started_at, 1),
        "plan": asdict(plan),
        "cpus": asdict(cpus),
    }
    table = write_results(results, args.out)
    print_report(results, table, args.out)
    return 0


def print_report(results: Mapping[str, Any], table: str, out: Path) -> None:
    """The machine line, the table, warnings and where the files went."""
    m, p = results["machine"], results["payload"]
    print(
        f"\nmachine: {m['cpu_model']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}, "
        f"aiohttp {m['aiohttp']}, uvloop {m['uvloop']}, gateway loop {m['gateway_event_loop']}; {m['wrk']}; "
        f"{m['nginx']}"
    )
    print(
        f"payload: {p['query']}: {p['bytes']} B {p['content_type']}"
        + (f", gzip {p['gzip_bytes']} B" if p["gzip_bytes"] else "")
        + f"; nginx serves the simulator's raw page: {p['nginx_bytes']} B"
    )
    print(
        f"servers on core {results['run']['cpus']['server']}, wrk -t1 and this script on core "
        f"{results['run']['cpus']['client']}; {results['run']['seconds']} s\n"
    )
    print(table)
    for warning in results["warnings"]:
        print(f"WARNING: {warning}")
    print(f"\nwrote {out / 'latest.json'} and {out / 'concurrency.png'}")


if __name__ == "__main__":
    sys.exit(main())
