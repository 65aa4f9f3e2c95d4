"""A small, real HTTP forward proxy for tests (a stand-in for a corporate egress proxy such as Squid):
CONNECT tunnels and absolute-form forwarding on 127.0.0.1, optional Basic proxy credentials, or a
refusal of every request. It keeps every request it received, to check that outbound HTTP honours
HTTPS_PROXY / HTTP_PROXY."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

HEAD_LIMIT = 16 * 1024
CHUNK = 65536
_PROXY_ONLY = {b"proxy-authorization", b"proxy-connection"}


@dataclass
class Seen:
    method: str
    """``CONNECT``, ``GET``..."""
    target: str
    """As on the request line: ``host:port`` for CONNECT, the absolute URL for forwarding."""
    headers: dict[str, str]
    """The request's header lines as received (names as sent; last wins)."""


def _header(headers: dict[str, str], name: str) -> str:
    """The last value of a header, whatever the case of its name ("" if absent)."""
    found = ""
    for key, value in headers.items():
        if key.lower() == name:
            found = value
    return found


def _closes(headers: dict[str, str]) -> bool:
    return "close" in _header(headers, "connection").lower()


async def _relay_exact(src: asyncio.StreamReader, dst: asyncio.StreamWriter, size: int) -> None:
    while size > 0:
        data = await src.read(min(size, CHUNK))
        if not data:
            raise asyncio.IncompleteReadError(b"", size)
        dst.write(data)
        await dst.drain()
        size -= len(data)


async def _relay_chunked(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Relays a chunked body, raw, up to and including its terminator (and trailers)."""
    while True:
        line = await src.readuntil(b"\r\n")
        dst.write(line)
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            break
        await _relay_exact(src, dst, size + 2)
    while (line := await src.readuntil(b"\r\n")) != b"\r\n":
        dst.write(line)
    dst.write(line)
    await dst.drain()


async def _relay_until_eof(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while data := await src.read(CHUNK):
        dst.write(data)
        await dst.drain()


async def _relay_body(src: asyncio.StreamReader, dst: asyncio.StreamWriter, headers: dict[str, str]) -> None:
    """Relays a message body framed by Transfer-Encoding: chunked or Content-Length (none if neither)."""
    if _header(headers, "transfer-encoding").lower().endswith("chunked"):
        await _relay_chunked(src, dst)
    elif length := _header(headers, "content-length"):
        await _relay_exact(src, dst, int(length))


def _parse(head: bytes) -> tuple[list[str], list[bytes], dict[str, str]]:
    """The start line's three parts, the raw header lines and the headers; ValueError if malformed."""
    lines = head[:-4].split(b"\r\n")
    start = lines[0].decode("latin-1").split(" ", 2)
    if len(start) != 3:
        raise ValueError("bad start line")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name.strip():
            raise ValueError("bad header line")
        headers[name.strip()] = value.strip()
    return start, lines[1:], headers


class ForwardProxy:
    """An HTTP forward proxy on 127.0.0.1 (a free port) for tests: tunnels ``CONNECT host:port`` and
    forwards absolute-form requests (``GET http://host:port/path``) as origin-form requests, dropping
    only Proxy-Authorization and Proxy-Connection, keeping client connections alive.

    With ``credentials=(user, password)``, a request without that exact Basic Proxy-Authorization is
    answered 407 and closed; with ``refuse_with=N``, every (authorised) request is answered N and closed.
    ``seen`` keeps every well-formed request head received, ``tunnels_opened`` the tunnels established.
    ``close()`` (or leaving ``async with``) stops listening and closes every connection and tunnel.
    ``hosts`` maps names to the addresses the proxy connects to for them (under ``.test``, names
    nothing else resolves)."""

    def __init__(
        self,
        *,
        credentials: tuple[str, str] | None = None,
        refuse_with: int | None = None,
        hosts: Mapping[str, str] | None = None,
    ) -> None:
        self._hosts = dict(hosts or {})
        """Names only this proxy resolves (to an address): a client reaching one went through it."""
        self._authorization = (
            "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode() if credentials else None
        )
        self._refuse_with = refuse_with
        self.seen: list[Seen] = []
        self.tunnels_opened = 0
        self.port = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=HEAD_LIMIT)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        while self._tasks:
            for writer in list(self._writers):
                writer.transport.abort()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for writer in self._writers:
            writer.transport.abort()
        await asyncio.sleep(0)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> ForwardProxy:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        opened = [writer]
        self._writers.add(writer)
        try:
            while not self._closing and await self._request(reader, writer, opened):
                pass
        except (Exception, asyncio.CancelledError):  # any error, or close(), just ends this connection
            pass
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                for each in list(opened):
                    await self._release(each, opened)
            self._tasks.discard(task)

    async def _connect(
        self, host: str, port: int, opened: list[asyncio.StreamWriter]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(10):
            address = self._hosts.get(host, host.strip("[]"))
            reader, writer = await asyncio.open_connection(address, port, limit=HEAD_LIMIT)
        opened.append(writer)
        self._writers.add(writer)
        return reader, writer

    async def _release(self, writer: asyncio.StreamWriter, opened: list[asyncio.StreamWriter]) -> None:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        opened.remove(writer)
        self._writers.discard(writer)

    async def _request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, opened: list[asyncio.StreamWriter]
    ) -> bool:
        """Serves one request; whether to keep the client connection for another."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        except asyncio.LimitOverrunError:
            return await _answer(writer, 400)
        try:
            (method, target, version), lines, headers = _parse(head)
        except ValueError:
            return await _answer(writer, 400)
        self.seen.append(Seen(method, target, headers))
        if self._authorization is not None and _header(headers, "proxy-authorization") != self._authorization:
            return await _answer(writer, 407, 'Proxy-Authenticate: Basic realm="test"\r\n')
        if self._refuse_with is not None:
            return await _answer(writer, self._refuse_with)
        if method == "CONNECT":
            return await self._tunnel(target, reader, writer, opened)
        url = urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            return await _answer(writer, 400)
        origin = target[len(url.scheme) + 3 + len(url.netloc) :].partition("#")[0]
        try:
            upstream_reader, upstream = await self._connect(url.hostname, url.port or 80, opened)
        except (OSError, ValueError):
            return await _answer(writer, 502)
        kept = [line for line in lines if line.partition(b":")[0].strip().lower() not in _PROXY_ONLY]
        upstream.write(b"\r\n".join([f"{method} {origin or '/'} {version}".encode("latin-1"), *kept, b"", b""]))
        await upstream.drain()
        await _relay_body(reader, upstream, headers)
        while True:
            try:
                answer = await upstream_reader.readuntil(b"\r\n\r\n")
                (_, status, _), _, answer_headers = _parse(answer)
            except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return await _answer(writer, 502)
            writer.write(answer)
            if not status.startswith("1") or status == "101":
                break
        framed = _header(answer_headers, "transfer-encoding") or _header(answer_headers, "content-length")
        if method == "HEAD" or status in ("204", "304") or status.startswith("1"):
            await writer.drain()
        elif framed:
            await _relay_body(upstream_reader, writer, answer_headers)
        else:
            await _relay_until_eof(upstream_reader, writer)
            return False
        await self._release(upstream, opened)
        return version == "HTTP/1.1" and not _closes(headers) and not _closes(answer_headers)

    async def _tunnel(
        self,
        target: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        opened: list[asyncio.StreamWriter],
    ) -> bool:
        host, _, port = target.rpartition(":")
        try:
            upstream_reader, upstream = await self._connect(host, int(port), opened)
        except (OSError, ValueError):
            return await _answer(writer, 502)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        self.tunnels_opened += 1
        pipes = [
            asyncio.create_task(_relay_until_eof(reader, upstream)),
            asyncio.create_task(_relay_until_eof(upstream_reader, writer)),
        ]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
        return False


async def _answer(writer: asyncio.StreamWriter, status: int, extra: str = "") -> bool:
    """Answers with an empty body, to close the connection: False (do not keep it)."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Refused"
    writer.write(f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    return False
