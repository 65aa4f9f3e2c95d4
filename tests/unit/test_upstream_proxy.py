"""The upstream's connections through a forward proxy (a real one on loopback, ``tests.forward_proxy``):
an https upstream through a CONNECT tunnel with TLS verified inside it, an http upstream in
absolute form, the proxy's credentials sent to the proxy only, and each refusal said in words
that name the proxy but never its password."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import new_event_loop
from gateway.outbound import ProxyServer, proxies_from_environment
from gateway.upstream.connections import (
    UpstreamConnectFailed,
    UpstreamConnections,
    UpstreamProxyRefused,
    UpstreamTimedOut,
    UpstreamTlsFailed,
)
from tests.certificates import tls_contexts
from tests.forward_proxy import ForwardProxy
from tests.scripted_upstream import OK, answering, serving
from tests.stack import free_port

HEADERS = {"X-App-UserId": "acme-web", "X-Project-Id": "p1"}
PASSWORD = "pr0xy-pa55"
CREDENTIALS = ("egress", PASSWORD)


def through(proxy_url: str, credentials: tuple[str, str] | None = None) -> ProxyServer:
    """The proxy as the gateway reads it from ``HTTPS_PROXY`` (with the credentials in its URL)."""
    user = "" if credentials is None else f"{credentials[0]}:{credentials[1]}@"
    proxies, problems = proxies_from_environment({"HTTPS_PROXY": proxy_url.replace("http://", f"http://{user}")})
    assert problems == []
    return proxies.by_scheme["https"]


def pool(endpoint: str, proxy: ProxyServer, **options: Any) -> UpstreamConnections:
    settings: dict[str, Any] = {"connect_timeout": 2.0, "read_timeout": 2.0, "max_body_bytes": 65536}
    return UpstreamConnections(endpoint, max_head_bytes=4096, proxy=proxy, **{**settings, **options})


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1 from a private CA, and a client context trusting it."""
    return tls_contexts(tmp_path)


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    async with ForwardProxy(credentials=CREDENTIALS) as running:
        yield running


async def test_an_https_upstream_is_reached_through_one_kept_tunnel_with_tls_inside(
    tls: tuple[ssl.SSLContext, ssl.SSLContext], proxy: ForwardProxy
) -> None:
    """CONNECT carries the proxy's credentials; the requests inside the tunnel do not; the
    tunnel is kept for the next call, as a direct connection is."""
    server_side, trusting = tls
    async with serving(answering(OK, OK), tls=server_side) as (server, url):
        connections = pool(url, through(proxy.url, CREDENTIALS), ssl_context=trusting)
        assert (await connections.get("/v1/p/jobs?limit=1", HEADERS)).body == b"{}"
        assert (await connections.get("/v1/p/jobs?limit=2", HEADERS)).body == b"{}"
        await connections.aclose()
    authority = url.removeprefix("https://")
    assert [(seen.method, seen.target) for seen in proxy.seen] == [("CONNECT", authority)]
    assert proxy.seen[0].headers["Host"] == authority
    assert (
        proxy.seen[0].headers["Proxy-Authorization"] == through(proxy.url, CREDENTIALS).headers()["Proxy-Authorization"]
    )
    assert proxy.tunnels_opened == 1
    assert server.connections == 1
    assert [head.split(b"\r\n", 1)[0] for head in server.heads] == [
        b"GET /v1/p/jobs?limit=1 HTTP/1.1",
        b"GET /v1/p/jobs?limit=2 HTTP/1.1",
    ]
    assert not any(b"proxy-authorization" in head.lower() for head in server.heads)


async def test_tls_inside_the_tunnel_is_verified_as_without_a_proxy(
    tls: tuple[ssl.SSLContext, ssl.SSLContext], proxy: ForwardProxy
) -> None:
    """A certificate the gateway does not trust is refused through the tunnel too: the proxy
    cannot stand in for the upstream."""
    server_side, _ = tls
    async with serving(answering(OK), tls=server_side) as (_server, url):
        with pytest.raises(UpstreamTlsFailed, match=r"certificate verify failed|unable to get local issuer") as failed:
            await pool(url, through(proxy.url, CREDENTIALS)).get("/v1/p/jobs", HEADERS)
    assert str(failed.value).startswith(f"TLS with the upstream (through the proxy {proxy.url}) failed: ")
    assert proxy.tunnels_opened == 1


def test_the_tunnel_works_on_the_loop_serve_runs(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """``serve`` runs on uvloop, whose ``start_tls`` (and its TLS shutdown) is its own: a kept
    tunnel answers twice, and closing it idle ends the upstream's connection."""
    server_side, trusting = tls

    async def scenario() -> tuple[bytes, bytes, int, int]:
        async with (
            ForwardProxy(credentials=CREDENTIALS) as proxy,
            serving(answering(OK, OK), tls=server_side) as (server, url),
        ):
            connections = pool(url, through(proxy.url, CREDENTIALS), ssl_context=trusting)
            first = await connections.get("/a", HEADERS)
            second = await connections.get("/b", HEADERS)
            await connections.aclose()
            await server.until_closed(1)
            return first.body, second.body, proxy.tunnels_opened, server.connections

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        assert type(runner.get_loop()).__module__.startswith("uvloop")
        assert runner.run(scenario()) == (b"{}", b"{}", 1, 1)


async def test_an_http_upstream_is_asked_through_the_proxy_in_absolute_form(proxy: ForwardProxy) -> None:
    async with serving(answering(OK, OK)) as (server, url):
        connections = pool(url, through(proxy.url, CREDENTIALS))
        assert (await connections.get("/v1/p%2F1/jobs?offset=0", HEADERS)).body == b"{}"
        assert (await connections.get("/v1/p/jobs", HEADERS)).body == b"{}"
        await connections.aclose()
    assert [(seen.method, seen.target) for seen in proxy.seen] == [
        ("GET", f"{url}/v1/p%2F1/jobs?offset=0"),
        ("GET", f"{url}/v1/p/jobs"),
    ]
    assert all(seen.headers["Host"] == url.removeprefix("http://") for seen in proxy.seen)
    assert all("Proxy-Authorization" in seen.headers for seen in proxy.seen)
    assert server.heads[0].startswith(b"GET /v1/p%2F1/jobs?offset=0 HTTP/1.1\r\n")


@pytest.mark.parametrize(
    ("options", "credentials", "said"),
    [
        ({}, None, "the proxy wants credentials (407): the proxy URL's user and password are missing or wrong"),
        (
            {},
            ("egress", "n0t-the-pa55"),
            "the proxy wants credentials (407): the proxy URL's user and password are missing or wrong",
        ),
        ({"refuse_with": 403}, CREDENTIALS, "the proxy refused the tunnel (403)"),
    ],
    ids=["no credentials", "wrong password", "forbidden"],
)
async def test_a_tunnel_refused_is_a_connection_failure_naming_the_proxy(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
    options: dict[str, Any],
    credentials: tuple[str, str] | None,
    said: str,
) -> None:
    server_side, trusting = tls
    async with (
        ForwardProxy(credentials=CREDENTIALS, **options) as proxy,
        serving(answering(OK), tls=server_side) as (server, url),
    ):
        with pytest.raises(UpstreamProxyRefused) as refused:
            await pool(url, through(proxy.url, credentials), ssl_context=trusting).get("/v1/p/jobs", HEADERS)
    assert str(refused.value) == f"could not connect to the upstream through the proxy {proxy.url}: {said}"
    assert server.connections == 0
    assert "pa55" not in str(refused.value)


async def test_a_proxy_not_listening_or_silent_fails_within_the_connect_timeout(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    _, trusting = tls
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UpstreamConnectFailed) as refused:
        await pool("https://metastudio.example", through(closed, CREDENTIALS), ssl_context=trusting).get("/v1", HEADERS)
    assert (
        str(refused.value) == f"could not connect to the upstream through the proxy {closed} (ConnectionRefusedError)"
    )

    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # takes the CONNECT, never answers it
        await reader.read(65536)

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    silent_url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    try:
        connections = pool("https://metastudio.example", through(silent_url, CREDENTIALS), connect_timeout=0.3)
        started = asyncio.get_running_loop().time()
        with pytest.raises(UpstreamTimedOut, match=r"through the proxy .* did not accept a connection"):
            await connections.get("/v1", HEADERS)
        assert asyncio.get_running_loop().time() - started < 1.5
    finally:
        for writer in accepted:
            writer.close()
        listener.close()
        await listener.wait_closed()


async def test_a_407_to_an_absolute_form_request_is_the_proxy_refusing_not_the_upstream_answering() -> None:
    async with ForwardProxy(credentials=CREDENTIALS) as proxy, serving(answering(OK)) as (server, url):
        with pytest.raises(UpstreamProxyRefused) as refused:
            await pool(url, through(proxy.url, ("egress", "n0t-the-pa55"))).get("/v1/p/jobs", HEADERS)
    assert str(refused.value) == (
        f"could not reach the upstream through the proxy {proxy.url}: the proxy wants credentials (407):"
        " the proxy URL's user and password are missing or wrong"
    )
    assert server.connections == 0
