"""The servers under test, each a context manager that starts it pinned and stops it by PID:
simulator + gateway (``metastudio-gateway serve``), the bare aiohttp app, nginx proxy_cache."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from aiohttp import web

from gateway.app import create_app
from gateway.clock import SystemClock
from gateway.config.settings import load_settings
from gateway.config.url_signing import random_url_signing_keys
from gateway.credentials.chain import select_credentials
from gateway.upstream.client import USER_AGENT
from gateway.upstream.signing import SignedRequest, sign
from perf.system import Cpus, http_get, started
from perf.wrk import Target
from tests.stack import ACME_KEY, LIVE_AK, LIVE_SK, LiveGateway, _tenants_toml, free_port, live_stack, simulator_command

BENCH_DIR = Path(__file__).resolve().parent.parent
PROJECT_ID = "sim-project"  # what live_stack configures
APP_USER_ID = "acme-web"
TENANTS = (("acme", APP_USER_ID, ACME_KEY),)
JOBS_PATH = f"/v1/{PROJECT_ID}/digital-human-training-manage/user/jobs"
LIST_PATH = "/v1/training-jobs"
HIT_QUERY_TEXT = "GET /v1/training-jobs (offset 0, limit 10)"
HIT_UPSTREAM_QUERY = (("limit", "10"), ("offset", "0"))
"""The benchmark query as the gateway sends it upstream (the default list: offset 0, limit 10)."""
JOBS_PER_USER = 1000
"""Simulator jobs per app user: hundreds of distinct full 100-job pages for the memory test."""
AUTH = {"Authorization": f"Bearer {ACME_KEY}"}


@dataclass(frozen=True)
class Payload:
    """What the gateway sends on a hit for the benchmark query, kept in files for the bare app."""

    content_type: str
    body: Path
    gzip_body: Path | None

    def describe(self) -> dict[str, Any]:
        """Sizes and type, for the report."""
        return {
            "query": HIT_QUERY_TEXT,
            "content_type": self.content_type,
            "bytes": self.body.stat().st_size,
            "gzip_bytes": self.gzip_body.stat().st_size if self.gzip_body else None,
        }


def gateway_config(max_bytes: int, fast_hit_path: bool = True) -> str:
    """The gateway's TOML (live_stack appends the tenant): long TTL, big cache, no rate limit."""
    return (
        f"[cache]\nttl_seconds = 3600\nmax_bytes = {max_bytes}\n\n"
        "[rate_limit]\nrequests_per_second = 0\n\n"
        f"[server]\ndrain_seconds = 0\nfast_hit_path = {str(fast_hit_path).lower()}\n"
    )


@contextlib.contextmanager
def gateway_stack(workdir: Path, cpus: Cpus, max_bytes: int, fast_hit_path: bool = True) -> Iterator[LiveGateway]:
    """Simulator (``--jobs-per-user``) + gateway with one tenant, both pinned to the server core."""
    workdir.mkdir()
    with live_stack(
        workdir,
        extra_config=gateway_config(max_bytes, fast_hit_path),
        wrap=cpus.server_wrap(),
        simulator_args=("--jobs-per-user", str(JOBS_PER_USER)),
        tenants=TENANTS,
    ) as live:
        yield live


@contextlib.contextmanager
def simulator_alone(workdir: Path) -> Iterator[str]:
    """The simulator (``--jobs-per-user``) on loopback, for a gateway app built in this process
    (``in_process_app``); yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with started(simulator_command(port, "--jobs-per-user", str(JOBS_PER_USER)), workdir / "simulator.log", url + "/"):
        yield url


def in_process_app(simulator_url: str, workdir: Path, log_stream: IO[bytes]) -> web.Application:
    """The gateway app as ``gateway_stack`` configures ``serve`` (the benchmark's tenant and config,
    the simulator's keys), to run in this process; its access log goes to ``log_stream``."""
    config = workdir / "gateway.toml"
    config.write_text(gateway_config(max_bytes=1 << 30) + _tenants_toml(TENANTS))
    env = {
        "METASTUDIO_PROJECT_ID": PROJECT_ID,
        "METASTUDIO_ENDPOINT": simulator_url,
        "HUAWEICLOUD_SDK_AK": LIVE_AK,
        "HUAWEICLOUD_SDK_SK": LIVE_SK,
    }
    return create_app(
        load_settings(env, str(config)),
        credentials=select_credentials(env, clock=SystemClock()),
        log_stream=log_stream,
        url_signing_keys=random_url_signing_keys(),
    )


def gateway_target(live: LiveGateway, gzip_accepted: bool = False, name: str = "gateway") -> Target:
    """The gateway's benchmark URL as a wrk target (with the tenant's API key)."""
    if gzip_accepted:
        return Target(f"{name} gzip", live.base_url + LIST_PATH, live.process.pid, {**AUTH, "Accept-Encoding": "gzip"})
    return Target(name, live.base_url + LIST_PATH, live.process.pid, AUTH)


def warm_hit(live: LiveGateway, path: str = LIST_PATH) -> tuple[dict[str, str], bytes]:
    """Fill the key of ``path`` (the benchmark query by default) and check the next answer is a
    hit; its headers and body."""
    url = live.base_url + path
    http_get(url, AUTH)  # the miss that fills the cache
    status, headers, body = http_get(url, AUTH)
    if status != 200 or headers.get("X-Cache") != "HIT":
        raise RuntimeError(f"expected a 200 cache hit, got {status} X-Cache={headers.get('X-Cache')}")
    return headers, body


def capture_payload(live: LiveGateway, workdir: Path, path: str = LIST_PATH) -> Payload:
    """Warm the key of ``path`` (the benchmark query by default) and keep the hit's exact bytes
    (and gzip's) in ``workdir``."""
    url = live.base_url + path
    headers, body = warm_hit(live, path)
    (workdir / "body").write_bytes(body)
    _, gz_headers, gz_body = http_get(url, {**AUTH, "Accept-Encoding": "gzip"})
    if gz_headers.get("Content-Encoding") != "gzip":
        return Payload(headers["Content-Type"], workdir / "body", None)
    if gzip.decompress(gz_body) != body:
        raise RuntimeError("the gateway's gzip body does not decompress to its identity body")
    (workdir / "body.gz").write_bytes(gz_body)
    return Payload(headers["Content-Type"], workdir / "body", workdir / "body.gz")


@contextlib.contextmanager
def bare_app(workdir: Path, cpus: Cpus, payload: Payload, loop: str) -> Iterator[tuple[Target, Target | None]]:
    """The bare aiohttp app serving the captured bytes on ``loop``; yields its identity and gzip targets."""
    port = free_port()
    command = [*cpus.server_wrap(), sys.executable, str(BENCH_DIR / "bare_app.py"), "--port", str(port)]
    command += ["--body", str(payload.body), "--content-type", payload.content_type, "--loop", loop]
    if payload.gzip_body is not None:
        command += ["--gzip-body", str(payload.gzip_body)]
    url = f"http://127.0.0.1:{port}"
    with started(command, workdir / "bare.log", url + "/") as process:
        if http_get(url + "/")[2] != payload.body.read_bytes():
            raise RuntimeError("the bare app does not serve the gateway's bytes")
        plain = Target("bare aiohttp", url + "/", process.pid)
        gz = Target("bare gzip", url + "/gzip", process.pid, {"Accept-Encoding": "gzip"})
        yield plain, gz if payload.gzip_body is not None else None


@contextlib.contextmanager
def floor_app(workdir: Path, cpus: Cpus, payload: Payload, loop: str) -> Iterator[Target]:
    """The floor app (``benchmarks/floor_app.py``) answering the captured hit bytes on ``loop``."""
    port = free_port()
    command = [*cpus.server_wrap(), sys.executable, str(BENCH_DIR / "floor_app.py"), "--port", str(port)]
    command += ["--body", str(payload.body), "--content-type", payload.content_type, "--loop", loop]
    url = f"http://127.0.0.1:{port}"
    with started(command, workdir / "floor.log", url + "/") as process:
        if http_get(url + "/")[2] != payload.body.read_bytes():
            raise RuntimeError("the floor app does not serve the gateway's bytes")
        yield Target(f"floor ({loop} protocol)", url + "/", process.pid)


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


def _nginx_string(value: str) -> str:
    """A value as an nginx string literal (refusing characters nginx would interpret)."""
    if any(char in value for char in '"$\\'):
        raise ValueError(f"cannot put {value!r} into nginx.conf")
    return f'"{value}"'


def _user_directive() -> str:
    """``user <me> <my group>;`` when running as root (workers would otherwise become nobody)."""
    if os.geteuid() != 0:
        return ""
    import grp
    import pwd

    return f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"


def nginx_config(prefix: Path, port: int, cpu: int, simulator_url: str) -> str:
    """nginx.conf from the template: loopback, one worker on ``cpu``, the pre-signed upstream request."""
    signed = signed_upstream_request(simulator_url, HIT_UPSTREAM_QUERY)
    header_lines = "\n".join(
        f"            proxy_set_header {name} {_nginx_string(value)};" for name, value in signed.headers.items()
    )
    replacements = {
        "@CPU_MASK@": format(1 << cpu, "b"),
        "@USER_DIRECTIVE@": _user_directive(),
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
def nginx(workdir: Path, cpus: Cpus, simulator_url: str) -> Iterator[tuple[Target, int]]:
    """Debian nginx, proxy_cache in front of the simulator, cache warmed; yields its target and body size."""
    prefix = workdir / "nginx"
    prefix.mkdir()
    port = free_port()
    config = prefix / "nginx.conf"
    config.write_text(nginx_config(prefix, port, cpus.server, simulator_url))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    command = [*cpus.server_wrap(), binary, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")]
    url = f"http://127.0.0.1:{port}{LIST_PATH}"
    with started(command, prefix / "stdout.log", url) as process:
        first, second = http_get(url), http_get(url)
        if first[0] != 200 or second[1].get("X-Cache") != "HIT":
            raise RuntimeError(f"nginx did not cache: {first[0]} {first[2][:200]!r}, then {second[1]}")
        yield Target("nginx cache", url, process.pid, AUTH), len(second[2])
