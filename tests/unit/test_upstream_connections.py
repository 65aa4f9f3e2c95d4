"""The upstream's keep-alive connections against scripted loopback servers: what goes on the wire,
how answers are framed and decoded, the limits and timeouts, keep-alive and its races, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import ssl
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.upstream.connections import (
    TLS_SHUTDOWN_SECONDS,
    UpstreamAnswerMalformed,
    UpstreamBodyBroken,
    UpstreamBodyCut,
    UpstreamBodyTooLarge,
    UpstreamConnectFailed,
    UpstreamConnections,
    UpstreamTimedOut,
    UpstreamTlsFailed,
    _Connection,
)
from tests.certificates import private_ca, tls_contexts
from tests.scripted_upstream import OK, Server, answering, answers, serving
from tests.stack import free_port

HEADERS = {"X-App-UserId": "acme-web", "X-Project-Id": "p1"}


def pool(endpoint: str, **limits: float) -> UpstreamConnections:
    settings = {"connect_timeout": 1.0, "read_timeout": 1.0, "max_body_bytes": 65536, "max_head_bytes": 4096}
    settings.update(limits)
    return UpstreamConnections(endpoint, **settings)  # type: ignore[arg-type]


async def test_a_get_carries_the_target_and_headers_as_given_and_the_connection_is_kept() -> None:
    """The request line holds the target byte for byte; Host is added when not given; two calls
    share one connection."""
    async with answers(OK, b'HTTP/1.1 200 OK\r\nContent-Length: 7\r\nRetry-After: 3\r\n\r\n{"a":1}') as (server, url):
        connections = pool(url)
        first = await connections.get("/v1/p%2F1/jobs?limit=10&offset=0", HEADERS)
        second = await connections.get("/v1/p/jobs", {**HEADERS, "Host": "upstream.example"})
        await connections.aclose()
    assert (first.status, first.body) == (200, b"{}")
    assert (second.body, second.headers["retry-after"]) == (b'{"a":1}', "3")
    assert server.connections == 1
    host = url.removeprefix("http://")
    assert server.heads[0] == (
        b"GET /v1/p%2F1/jobs?limit=10&offset=0 HTTP/1.1\r\nX-App-UserId: acme-web\r\nX-Project-Id: p1\r\n"
        b"Host: " + host.encode() + b"\r\nAccept-Encoding: gzip\r\n\r\n"
    )
    assert b"Host: upstream.example\r\n" in server.heads[1] and server.heads[1].count(b"Host:") == 1


async def test_a_kept_connection_does_not_hold_the_last_body() -> None:
    """Once its answer is given, an idle connection holds nothing of it: up to ``max_connections``
    idle ones would otherwise hold up to ``max_body_bytes`` each."""
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1_000_000
    async with answers(big, OK) as (server, url):
        connections = pool(url, max_body_bytes=2_000_000)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            answer = await connections.get("/v1/p/jobs", HEADERS)
            assert len(answer.body) == 1_000_000
            del answer
            await asyncio.sleep(0)  # the loop's handle that woke this task holds the answer until it ends
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert (await connections.get("/v1/p/jobs", HEADERS)).body == b"{}"
        await connections.aclose()
    assert server.connections == 1  # the connection was kept, and reused
    assert held < 100_000


async def test_chunked_and_close_delimited_bodies_are_read_whole() -> None:
    """A chunked body is joined; a body without a length ends with the connection, which is not reused."""
    chunked = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n4\r\n":1}\r\n0\r\n\r\n'

    async def script(server: Server, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        writer.write(chunked if number == 0 else b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 5000)
        if number == 0:
            await server.read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + b"y" * 3000)

    async with serving(script) as (server, url):
        connections = pool(url)
        assert (await connections.get("/a", HEADERS)).body == b'{"a":1}'
        assert (await connections.get("/b", HEADERS)).body == b"y" * 3000
        assert (await connections.get("/c", HEADERS)).body == b"x" * 5000
        await connections.aclose()
    assert server.connections == 2


async def test_connection_close_from_the_upstream_is_honoured() -> None:
    """An answer saying Connection: close leaves its connection unused after it."""
    close = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    async with answers(close, close) as (server, url):
        connections = pool(url)
        for _ in range(2):
            assert (await connections.get("/a", HEADERS)).body == b"{}"
    assert server.connections == 2


async def test_gzip_is_decoded_and_capped_by_what_it_decodes_to() -> None:
    """A gzip body arrives decoded; one that decodes to more than the cap is refused (a small
    body on the wire), as is a gzip body cut short or not gzip at all."""
    page = b'{"jobs":[' + b'{"job_id":"j"},' * 200 + b"{}]}"
    bomb = gzip.compress(b"0" * (4 * 65536))

    def gzipped(body: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    wire = [gzipped(gzip.compress(page)), gzipped(bomb), gzipped(gzip.compress(page)[:-12]), gzipped(b"not gzip")]
    async with answers(*wire) as (_server, url):
        connections = pool(url)
        assert (await connections.get("/a", HEADERS)).body == page
        assert len(bomb) < 1024
        with pytest.raises(UpstreamBodyTooLarge):
            await connections.get("/b", HEADERS)
        with pytest.raises(UpstreamBodyBroken):
            await connections.get("/c", HEADERS)
        with pytest.raises(UpstreamBodyBroken):
            await connections.get("/d", HEADERS)


async def test_a_gzip_body_of_several_members_is_decoded_whole_and_bytes_after_it_are_refused() -> None:
    """A gzip body may be several members one after another (RFC 1952): all are decoded, as
    aiohttp does (the first alone was kept: a page cut short, and a 502). Bytes after the last
    member that begin no other are refused; an empty gzip body is an empty body."""
    members = gzip.compress(b'{"a":') + gzip.compress(b"1}")
    trailing = gzip.compress(b'{"a":1}') + b"garbage!"

    def gzipped(body: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    async with answers(gzipped(members), gzipped(trailing), gzipped(b"")) as (_server, url):
        connections = pool(url)
        assert (await connections.get("/a", HEADERS)).body == b'{"a":1}'
        with pytest.raises(UpstreamBodyBroken):
            await connections.get("/b", HEADERS)
        assert (await connections.get("/c", HEADERS)).body == b""


async def test_framing_goes_by_the_last_transfer_coding_and_a_304_has_no_body_to_measure() -> None:
    """A body whose last transfer coding is not chunked ends with the connection, as llhttp reads
    it; a 304 that states its representation's length (over the cap) is answered, not refused."""

    async def script(server: Server, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        if number == 0:
            writer.write(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100000000\r\n\r\n")
            await writer.drain()
            await server.read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n{}")
        writer.close()

    async with serving(script) as (_server, url):
        connections = pool(url)
        assert (await connections.get("/a", HEADERS)).status == 304
        assert (await connections.get("/b", HEADERS)).body == b"{}"


async def test_trailers_after_a_chunked_body_are_not_taken_for_its_headers() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nRetry-After: 1\r\n\r\n"
    wire = head + b"2\r\n{}\r\n0\r\nRetry-After: 999\r\n\r\n"
    async with answers(wire) as (_server, url):
        answer = await pool(url).get("/a", HEADERS)
    assert (answer.body, answer.headers["retry-after"]) == (b"{}", "1")


async def test_a_body_sent_a_few_bytes_at_a_time_is_held_once() -> None:
    """A 256 KB body in pieces of 4 bytes: reading it takes memory of about its size at most (a
    bytes object per piece took over ten times as much)."""
    body = b"x" * 262_144
    pieces = b"".join(b"4\r\n" + body[n : n + 4] + b"\r\n" for n in range(0, len(body), 4))
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + pieces + b"0\r\n\r\n"

    async def script(server: Server, _number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        writer.write(wire)
        await writer.drain()

    async with serving(script) as (_server, url):
        connections = pool(url, max_body_bytes=1_000_000)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            answer = await connections.get("/a", HEADERS)
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        await connections.aclose()
    assert answer.body == body
    assert peak < 3 * len(body)


async def test_a_gzip_body_ending_with_the_connection_must_be_whole() -> None:
    """Without a length, the body ends when the connection does: gzip cut short there is broken."""
    body = gzip.compress(b'{"jobs":[' + b'{"job_id":"j"},' * 50 + b"{}]}")

    async def script(server: Server, _number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nConnection: close\r\n\r\n" + body[:-12])

    async with serving(script) as (_server, url):
        with pytest.raises(UpstreamBodyBroken):
            await pool(url).get("/a", HEADERS)


async def test_an_encoding_not_asked_for_is_refused() -> None:
    async with answers(b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\n{}") as (_server, url):
        with pytest.raises(UpstreamBodyBroken):
            await pool(url).get("/a", HEADERS)


async def test_a_body_over_the_cap_is_refused_at_its_length_or_as_it_streams() -> None:
    """A Content-Length over the cap is refused before the body (the server sends none and
    waits: no timeout is needed to fail); a chunked body is refused once it passes the cap."""
    too_long = b"HTTP/1.1 200 OK\r\nContent-Length: 65537\r\n\r\n"
    chunk = b"1000\r\n" + b"0" * 4096 + b"\r\n"

    async def script(server: Server, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        if number == 0:
            writer.write(too_long)
            await asyncio.sleep(5)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(20):
            writer.write(chunk)
            await writer.drain()
        await asyncio.sleep(5)

    async with serving(script) as (_server, url):
        connections = pool(url, read_timeout=10.0)
        for target in ("/a", "/b"):
            async with asyncio.timeout(2):
                with pytest.raises(UpstreamBodyTooLarge):
                    await connections.get(target, HEADERS)


@pytest.mark.parametrize(
    "sent", [b"HTTP/1.1 200 O", b"HTTP/1.1 100 Continue\r\n\r\n"], ids=["part of a head", "an interim answer"]
)
async def test_a_close_before_the_answers_head_is_whole_fails_as_a_connection_does(sent: bytes) -> None:
    """The upstream closes after part of a head (or after an interim answer only): no answer was
    given, so this is a connection failure (retried by the client), not a broken body (a 502)."""

    async def script(server: Server, _number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        writer.write(sent)
        await writer.drain()

    async with serving(script) as (_server, url):
        with pytest.raises(UpstreamConnectFailed) as failed:
            await pool(url).get("/a", HEADERS)
    assert failed.value.head is None


async def test_a_body_cut_short_is_cut_and_a_close_before_any_answer_fails_to_connect() -> None:
    async def script(server: Server, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        if number == 0:
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"cut')
            await writer.drain()

    async with serving(script) as (server, url):
        connections = pool(url)
        with pytest.raises(UpstreamBodyCut):
            await connections.get("/a", HEADERS)
        with pytest.raises(UpstreamConnectFailed):
            await connections.get("/b", HEADERS)
    assert server.connections == 2  # a new connection does not close and retry: the caller decides


async def test_the_read_timeout_is_the_longest_silence() -> None:
    """A byte every 0.05 s keeps a 1 s read timeout from firing over a 1.5 s answer; 1 s of
    silence then fires it."""
    body = b'{"jobs":[' + b" " * 40 + b"]}"

    async def script(server: Server, _number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        for byte in range(30):
            await asyncio.sleep(0.05)
            writer.write(body[byte : byte + 1])
        await asyncio.sleep(5)

    async with serving(script) as (_server, url):
        connections = pool(url, read_timeout=1.0)
        started = asyncio.get_running_loop().time()
        with pytest.raises(UpstreamTimedOut):
            await connections.get("/a", HEADERS)
        assert asyncio.get_running_loop().time() - started > 2.0  # 1.5 s of drip, then 1 s of silence


async def test_nothing_listening_fails_to_connect() -> None:
    with pytest.raises(UpstreamConnectFailed):
        await pool(f"http://127.0.0.1:{free_port()}").get("/a", HEADERS)


async def test_a_kept_connection_closed_while_idle_is_retried_once_on_a_new_one() -> None:
    """The server closes the kept connection as the second request arrives, unanswered: the call
    goes once more, on a new connection, and is answered."""

    async def script(server: Server, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        writer.write(OK)
        if number == 0:
            await server.read_head(reader)  # and close without answering

    async with serving(script) as (server, url):
        connections = pool(url)
        await connections.get("/a", HEADERS)
        assert (await connections.get("/b", HEADERS)).body == b"{}"
    assert server.connections == 2 and len(server.heads) == 3


async def test_connections_idle_too_long_are_closed_and_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    """After two calls at once (two connections), calls one at a time keep reusing the newer
    connection; the other, idle past the idle time, is closed meanwhile. After a pause past the
    idle time, the next call opens a new connection."""
    monkeypatch.setattr("gateway.upstream.connections.IDLE_SECONDS", 0.3)
    async with answers(*[OK] * 12) as (server, url):
        connections = pool(url)
        await asyncio.gather(connections.get("/a", HEADERS), connections.get("/b", HEADERS))
        for _ in range(8):  # 0.8 s of calls 0.1 s apart
            await asyncio.sleep(0.1)
            await connections.get("/c", HEADERS)
        await server.until_closed(1)
        assert server.connections == 2
        await asyncio.sleep(0.6)
        await connections.get("/d", HEADERS)
        await server.until_closed(2)
    assert server.connections == 3


async def test_connections_idle_too_long_are_closed_with_no_call_coming(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection idle past the idle time is closed even if no call comes to close it (a
    quiet gateway held its connections until the upstream closed them); one that fell idle
    later is closed when its own time is up; after ``aclose`` nothing is left to fire."""
    monkeypatch.setattr("gateway.upstream.connections.IDLE_SECONDS", 0.3)
    async with answers(*[OK] * 4) as (server, url):
        connections = pool(url)
        await asyncio.gather(connections.get("/a", HEADERS), connections.get("/b", HEADERS))
        await asyncio.sleep(0.2)
        await connections.get("/c", HEADERS)  # the newer connection: idle again from here
        await server.until_closed(1)  # the other one, by the timer, about 0.3 s after /a and /b
        await server.until_closed(2)  # this one, by the timer set again, 0.3 s after /c
        await connections.get("/d", HEADERS)
        await connections.aclose()
        await server.until_closed(3)
    assert server.connections == 3


async def test_a_cancelled_call_closes_its_connection() -> None:
    """A call given up (the caller's deadline) closes its connection; the next call opens another."""
    asked = asyncio.Event()

    async def script(server: Server, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        if number == 0:
            asked.set()
            await reader.read()  # until the client closes
            return
        writer.write(OK)

    async with serving(script) as (server, url):
        connections = pool(url, read_timeout=10.0)
        call = asyncio.create_task(connections.get("/a", HEADERS))
        async with asyncio.timeout(2):
            await asked.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await server.until_closed(1)
        assert (await connections.get("/b", HEADERS)).body == b"{}"
    assert server.connections == 2


async def test_a_call_cancelled_as_its_answer_arrives_closes_its_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancelled after the whole answer came but before the call resumed: the connection is
    closed, not left open outside the pool."""
    async with answers(OK, OK) as (server, url):
        connections = pool(url)
        call = asyncio.create_task(connections.get("/a", HEADERS))
        complete = _Connection._complete

        def complete_then_cancel(connection: _Connection) -> None:
            complete(connection)
            call.cancel()

        monkeypatch.setattr(_Connection, "_complete", complete_then_cancel)
        with pytest.raises(asyncio.CancelledError):
            await call
        await server.until_closed(1)
    assert server.connections == 1


async def test_bytes_beyond_the_answer_close_the_connection() -> None:
    """An answer followed in the same read by the start of another message: the answer is
    returned as it was, and the connection is not reused (the next call opens another)."""
    stray = b"HTTP/1.1 200 OK\r\nX-Stray: 1\r\nContent-Length: 12\r\n\r\nHTTP"
    async with answers(OK + stray, OK) as (server, url):
        connections = pool(url)
        first = await connections.get("/a", HEADERS)
        second = await connections.get("/b", HEADERS)
    assert (first.headers, first.body) == ({"content-length": "2"}, b"{}")
    assert (second.status, second.body) == (200, b"{}")
    assert server.connections == 2


async def test_a_failure_after_the_head_carries_the_status() -> None:
    """A 503 whose body is cut short fails as cut short, and says it was a 503 (the client goes
    by the status, as before it read error bodies); a failure before any head carries none."""

    async def script(server: Server, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        if number == 0:
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nContent-Length: 50\r\n\r\n{")

    async with serving(script) as (_server, url):
        connections = pool(url)
        with pytest.raises(UpstreamBodyCut) as cut:
            await connections.get("/a", HEADERS)
        with pytest.raises(UpstreamConnectFailed) as unanswered:
            await connections.get("/b", HEADERS)
    assert cut.value.head is not None
    assert (cut.value.head.status, cut.value.head.headers["retry-after"]) == (503, "2")
    assert unanswered.value.head is None


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.1 two hundred\r\n\r\n",
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 5000,
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\n\r\n" * 9,
        b"HTTP/1.1 099 Below\r\nContent-Length: 2\r\n\r\n{}",
    ],
    ids=[
        "status",
        "protocol",
        "head over the limit",
        "unfinished head over the limit",
        "upgrade",
        "endless 1xx",
        "status under 100",
    ],
)
async def test_a_malformed_answer_is_refused_at_once(wire: bytes) -> None:
    """Refused as soon as it is seen to be wrong (the server then waits: no timeout decides it)."""
    async with answers(wire) as (_server, url):
        with pytest.raises(UpstreamAnswerMalformed):
            async with asyncio.timeout(0.5):
                await pool(url).get("/a", HEADERS)


async def test_an_interim_answer_is_skipped() -> None:
    async with answers(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK) as (_server, url):
        answer = await pool(url).get("/a", HEADERS)
    assert (answer.status, answer.body, "link" in answer.headers) == (200, b"{}", False)


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/a", {"X-App-UserId": "acme\r\nX-Evil: 1"}),
        ("/a HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET /b", HEADERS),
        ("/a", {"X-App-UserId": "acme\x00"}),
        ("/a", {"X-App\nUserId": "acme"}),
    ],
)
async def test_a_line_break_in_the_request_is_refused_before_anything_is_sent(
    target: str, headers: dict[str, str]
) -> None:
    async with answers(OK) as (server, url):
        with pytest.raises(ValueError, match="line break"):
            await pool(url).get(target, headers)
    assert server.connections == 0


async def test_connections_wait_for_a_free_one_within_the_connect_timeout() -> None:
    """With one connection allowed and it busy, a second call waits, then fails after the
    connect timeout; once the first is answered, calls go through again."""
    release = asyncio.Event()

    async def script(server: Server, _number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        await release.wait()
        writer.write(OK)
        await server.read_head(reader)
        writer.write(OK)

    async with serving(script) as (server, url):
        connections = UpstreamConnections(
            url, connect_timeout=0.2, read_timeout=5, max_body_bytes=1024, max_head_bytes=4096, max_connections=1
        )
        first = asyncio.create_task(connections.get("/a", HEADERS))
        await asyncio.sleep(0.05)
        with pytest.raises(UpstreamTimedOut):
            await connections.get("/b", HEADERS)
        release.set()
        assert (await first).body == b"{}"
        assert (await connections.get("/c", HEADERS)).body == b"{}"
    assert server.connections == 1


async def test_tls_is_verified_against_the_trusted_certificates(tmp_path: Path) -> None:
    """Over TLS with a certificate for 127.0.0.1 from a private CA: trusted, the answer comes;
    with the system's CA store alone, the connection is refused."""
    ca, certificate, key = private_ca(tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(certificate, key)
    async with serving(answering(OK, OK), tls=server_side) as (_server, url):
        trusting = UpstreamConnections(
            url,
            connect_timeout=2,
            read_timeout=2,
            max_body_bytes=1024,
            max_head_bytes=4096,
            ssl_context=ssl.create_default_context(cafile=str(ca)),
        )
        assert (await trusting.get("/a", HEADERS)).body == b"{}"
        with pytest.raises(UpstreamConnectFailed):
            await pool(url).get("/b", HEADERS)


@pytest.mark.parametrize(
    ("certificate", "reason"),
    [({"expired": True}, "certificate has expired"), ({"server_ip": "127.0.0.2"}, "IP address mismatch")],
    ids=["expired", "for another address"],
)
async def test_a_certificate_not_verified_is_a_tls_failure_saying_why(
    tmp_path: Path, certificate: dict[str, Any], reason: str
) -> None:
    """An expired certificate, or one for another address, from a trusted CA: ``UpstreamTlsFailed``
    with OpenSSL's reason (it was a connection failure naming only the exception's class, which
    nothing logged: an operator could not tell it from a network outage)."""
    server_side, trusting = tls_contexts(tmp_path, **certificate)
    async with serving(answering(OK), tls=server_side) as (_server, url):
        with pytest.raises(UpstreamTlsFailed) as failed:
            await pool(url, ssl_context=trusting).get("/a", HEADERS)  # type: ignore[arg-type]
    assert str(failed.value).startswith(f"TLS with the upstream failed: {reason}")


async def test_plain_http_on_the_tls_port_is_a_tls_failure(tmp_path: Path) -> None:
    """A server that answers plain HTTP where TLS is expected (a wrong port, a proxy): a TLS
    failure with OpenSSL's reason, not a connection failure."""

    async def plain(_server: Server, _number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the ClientHello's first byte: not a request line, a plain server refuses it
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()

    async with serving(plain) as (_server, url):
        with pytest.raises(UpstreamTlsFailed, match="TLS with the upstream failed: "):
            await pool(url.replace("http://", "https://")).get("/a", HEADERS)


async def test_the_host_name_is_verified_without_its_trailing_dot(monkeypatch: pytest.MonkeyPatch) -> None:
    """``https://metastudio.cn-north-4.myhuaweicloud.com.`` (a trailing dot, to skip the search
    domains of a pod's resolver): the certificate is checked for the name without the dot, as
    aiohttp does; with it, every call failed as a host name mismatch."""
    asked: dict[str, Any] = {}

    async def create_connection(_factory: Any, host: str, port: int, **options: Any) -> Any:
        asked.update(options, host=host, port=port)
        raise ConnectionRefusedError

    monkeypatch.setattr(asyncio.get_running_loop(), "create_connection", create_connection)
    with pytest.raises(UpstreamConnectFailed):
        await pool("https://metastudio.cn-north-4.myhuaweicloud.com.").get("/a", HEADERS)
    assert asked["host"] == "metastudio.cn-north-4.myhuaweicloud.com."  # resolved as given
    assert asked["server_hostname"] == "metastudio.cn-north-4.myhuaweicloud.com"


@contextlib.asynccontextmanager
async def _closed_after_one_answer(directory: Path, after: Callable[[ssl.SSLSocket], None]) -> AsyncIterator[int]:
    """A TLS server (OpenSSL in blocking mode, in a thread, as most servers read) that answers one
    request and then runs ``after`` on its socket; the pool gets the answer and is closed. Yields
    the server's port while its thread runs."""
    server_side, trusting = tls_contexts(directory)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        accepted, _ = listener.accept()
        with server_side.wrap_socket(accepted, server_side=True, suppress_ragged_eofs=False) as tls:
            head = b""
            while b"\r\n\r\n" not in head:
                head += tls.recv(4096)
            tls.sendall(OK)
            after(tls)

    server = threading.Thread(target=serve)
    server.start()
    try:
        connections = pool(f"https://127.0.0.1:{port}", ssl_context=trusting)  # type: ignore[arg-type]
        assert (await connections.get("/a", HEADERS)).body == b"{}"
        await connections.aclose()
        yield port
    finally:
        await asyncio.to_thread(server.join, 10)
        listener.close()


async def test_an_idle_tls_connection_is_closed_with_a_close_notify(tmp_path: Path) -> None:
    """Closing the pool closes its idle TLS connection politely: the server sees the
    close_notify, not an EOF without one (``SSLEOFError``, which servers log as a possible
    truncation: the connection used to be aborted)."""
    ended: list[str] = []

    def read_the_end(tls: ssl.SSLSocket) -> None:
        tls.settimeout(5)
        try:
            ended.append("clean" if tls.recv(4096) == b"" else "more bytes")
        except ssl.SSLError as exc:
            ended.append(type(exc).__name__)

    async with _closed_after_one_answer(tmp_path, read_the_end):
        pass
    assert ended == ["clean"]


def _established_to(port: int) -> int:
    """Connections this machine holds ESTABLISHED to ``port`` on 127.0.0.1 (``/proc/net/tcp``)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[2].endswith(f":{port:04X}") and row.split()[3] == "01")


async def test_a_polite_close_a_server_leaves_unanswered_is_dropped_within_a_second(tmp_path: Path) -> None:
    """A server that never answers the close_notify of an idle connection being closed: the
    socket is dropped after ``TLS_SHUTDOWN_SECONDS``, not asyncio's 30 s (each such connection
    was held open that long)."""
    async with _closed_after_one_answer(tmp_path, lambda _tls: time.sleep(3)) as port:  # never reads again
        await asyncio.sleep(TLS_SHUTDOWN_SECONDS + 0.6)
        assert _established_to(port) == 0
