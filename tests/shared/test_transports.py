"""The ways to reach Redis besides plain TCP, against a real ``redis-server``: TLS (``rediss://``)
with a private CA named in the URL (``?ssl_cert_reqs=required&ssl_ca_certs=/path``, redis-py's
own query parameters), and a unix socket (``unix://``). Replicas share an entry over each, and a
TLS server whose certificate the gateway cannot verify is not used at all."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest
import redis

from tests.certificates import private_ca
from tests.shared.helpers import PREFIX, REDIS_PASSWORD, UP, get, metric, replicas
from tests.stack import LiveGateway, free_port, stop_process, upstream_calls

pytestmark = pytest.mark.redis


@contextmanager
def _redis(workdir: Path, url: str, *listen: str) -> Iterator[str]:
    """A ``redis-server`` listening as ``listen`` says, with the test password, until it answers
    PING at ``url`` (bounded); yields ``url``; stopped by PID."""
    args = ["--save", "", "--appendonly", "no", "--requirepass", REDIS_PASSWORD, "--dir", str(workdir), *listen]
    with (workdir / "redis.log").open("ab") as log:
        process = subprocess.Popen(["redis-server", *args], stdout=log, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, f"redis-server exited with {process.returncode}"
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        stop_process(process)


def _entries_in_redis(url: str) -> int:
    """Cache entries (not leases, backoffs or buckets) the replicas wrote for the acme tenant."""
    with redis.Redis.from_url(url, socket_timeout=2) as client:
        keys = [key.decode() for key in client.scan_iter(match=f"{PREFIX}:*{{acme}}:*", count=1000)]
    return sum(1 for key in keys if not key.endswith((":lease", ":backoff", ":rate")))


async def _shared_entry(gateways: tuple[LiveGateway, ...], url: str) -> None:
    """A list loaded through the first replica is, once in Redis, a HIT on the second with no
    upstream call; both replicas say the shared tier is up."""
    assert [metric(gateway.base_url, UP) for gateway in gateways] == [1.0, 1.0]
    path = "/v1/training-jobs?limit=7&batch_name=transport"
    async with aiohttp.ClientSession() as session:
        first = await get(session, gateways[0].base_url + path)
        deadline = time.monotonic() + 5
        while not _entries_in_redis(url):  # the holder writes the entry just after it answers
            assert time.monotonic() < deadline, "the first replica wrote no entry to Redis"
            await asyncio.sleep(0.05)
        before = upstream_calls(gateways[0].simulator_url)
        second = await get(session, gateways[1].base_url + path)
    assert (first.status, first.headers["X-Cache"]) == (200, "MISS")
    assert (second.status, second.headers["X-Cache"], second.body) == (200, "HIT", first.body)
    assert upstream_calls(gateways[0].simulator_url) == before
    assert [metric(gateway.base_url, UP) for gateway in gateways] == [1.0, 1.0]


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """A TLS-only ``redis-server`` (no plain port) whose certificate a private CA signed: (workdir, port)."""
    workdir = tmp_path_factory.mktemp("tls")
    ca, cert, key = private_ca(workdir)
    port = free_port()
    url = f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    listen = ["--bind", "127.0.0.1", "--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no"]
    tls_files = ["--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca)]
    with _redis(workdir, url, *listen, *tls_files):
        yield workdir, port


async def test_replicas_share_an_entry_over_tls_with_a_private_ca(tls_redis: tuple[Path, int], tmp_path: Path) -> None:
    """``rediss://...?ssl_cert_reqs=required&ssl_ca_certs=<CA file>``: the server's certificate is
    verified against the private CA, and replicas share through it."""
    workdir, port = tls_redis
    ca = workdir / "ca.pem"
    url = f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    with replicas(tmp_path, 2, url) as gateways:
        await _shared_entry(gateways, url)


async def test_a_tls_redis_whose_certificate_cannot_be_verified_is_not_used(
    tls_redis: tuple[Path, int], tmp_path: Path
) -> None:
    """``rediss://`` without the private CA: the system CAs do not trust the server, so the replica
    stays on its own (shared tier down), still answers, and its log says why at start-up (it said
    nothing: the breaker starts open, and only a fall from up was logged)."""
    _, port = tls_redis
    with replicas(tmp_path, 1, f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{port}/0") as (gateway,):
        async with aiohttp.ClientSession() as session:
            answer = await get(session, gateway.base_url + "/v1/training-jobs?limit=3")
        assert metric(gateway.base_url, UP) == 0.0
    assert answer.status == 200
    said = (tmp_path / "gateway.log").read_text()
    assert (
        "shared tier not reached at start-up (Redis TLS failed: self-signed certificate in certificate chain):"
        " this replica acts on its own until it answers"
    ) in said


async def test_replicas_share_an_entry_over_a_unix_socket(tmp_path: Path) -> None:
    """``unix://:<password>@/path/redis.sock`` to a Redis with no TCP port: replicas share through it."""
    with tempfile.TemporaryDirectory(prefix="mgw-", dir="/tmp") as short:  # a socket path has ~100 bytes at most
        socket_path = Path(short) / "redis.sock"
        url = f"unix://:{REDIS_PASSWORD}@{socket_path}"
        listen = ["--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700"]
        with _redis(tmp_path, url, *listen), replicas(tmp_path, 2, url) as gateways:
            await _shared_entry(gateways, url)
