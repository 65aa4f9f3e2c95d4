"""HTTP/1.1 to the upstream: keep-alive connections, one GET at a time on each, read with llhttp.

``UpstreamConnections.get`` sends a body-less GET with the headers given (``Host`` added when
they lack it, ``Accept-Encoding: gzip``) and returns the answer's status, headers and whole body:

- the answer is read with llhttp (httptools' ``HttpResponseParser``, the parser aiohttp's is
  built on): ``Content-Length``, chunked, or until the connection closes; a gzip body is
  decompressed, and ``max_body_bytes`` caps what it decompresses to (a longer ``Content-Length``
  is refused before any body is read); ``max_head_bytes`` caps the head's fields (names and
  values) and what is received before the head ends;
- timeouts: ``connect_timeout`` for a free connection slot, the TCP connect and the TLS
  handshake together; ``read_timeout`` for the longest silence while the answer is awaited or
  read; at most ``MAX_INTERIM_ANSWERS`` 1xx answers before the real one;
- keep-alive: an answered connection is kept for the next call unless either side said close,
  for up to ``IDLE_SECONDS`` (then closed, by the next call or by a timer if none comes); a
  kept connection that closes before any byte of the answer came is retried once at once on a
  new connection (RFC 9112 9.3.1.1: the server may have closed it idle while the request was on
  its way); newer connections are used first; bytes beyond the answer (another message, or
  anything while idle) close the connection;
- at most ``max_connections`` at once; further calls wait for one to be free;
- ``https`` endpoints: TLS with the certificate and host name verified against the system's CA
  store (``ssl.create_default_context``, what aiohttp uses by default; a host name's trailing dot
  left out of the check, as aiohttp does); a failure says OpenSSL's reason
  (``UpstreamTlsFailed``); a connection with nothing in flight is closed politely (TLS
  close_notify), one given up on is aborted;
- a call that is cancelled (the caller's deadline) closes its connection, which is never reused
  half-read;
- through a forward proxy, when one is given (``gateway.outbound``): an ``https`` upstream
  through a CONNECT tunnel (``gateway.upstream.tunnel``; TLS inside it, verified as without
  one), an ``http`` upstream with requests in absolute form; the proxy's credentials go to the
  proxy only (in CONNECT, or in each absolute-form request, which the proxy strips); a tunnel
  refused, or a 407 to an absolute-form request, is ``UpstreamProxyRefused``.

Failures are ``UpstreamHttpError`` subclasses, each saying what a caller needs to decide whether
to retry: ``UpstreamConnectFailed`` (``UpstreamTlsFailed`` and ``UpstreamProxyRefused`` among
them), ``UpstreamTimedOut``, ``UpstreamBodyTooLarge``, ``UpstreamBodyCut`` (the connection
closed, or was reset, before the body was whole: a connection failure after the head),
``UpstreamBodyBroken`` (whole as framed, but not decodable) and ``UpstreamAnswerMalformed``. One
that happens after the answer's head was read carries that head (``head``: status and headers,
no body), so a caller can still go by the status, as a client that reads no error body would.

Written out, not aiohttp's client (which the gateway keeps for credential and JWKS endpoints),
because every cache miss makes this call: with aiohttp's request building, connection pool,
response object and stream reader, the attempt (signing and orjson included) took 308-393 µs of
CPU, against 191-289 with this (interleaved runs of ``benchmarks/miss_pieces.py``).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

from gateway.outbound import ProxyServer
from gateway.tls import tls_reason
from gateway.upstream.tunnel import PROXY_AUTHENTICATION_REQUIRED, TunnelRefused, open_tunnel, refusal

IDLE_SECONDS = 15.0
"""How long an idle connection is kept for reuse (aiohttp's default keep-alive)."""
MAX_INTERIM_ANSWERS = 8
"""1xx answers taken before the real one; more make the answer malformed."""
_ACCEPT_ENCODING = "Accept-Encoding: gzip\r\n"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
"""Characters a request target or header may not hold (CR and LF included: no header injection)."""


class UpstreamHttpError(Exception):
    """An exchange with the upstream failed; the text never holds request or answer data."""

    head: UpstreamAnswer | None = None
    """The answer's status and headers (no body) when its head was read before the failure."""


class UpstreamConnectFailed(UpstreamHttpError):
    """No connection: refused, reset, unreachable, TLS refused, or closed before any answer."""


class UpstreamProxyRefused(UpstreamConnectFailed):
    """The forward proxy refused to reach the upstream (credentials wanted or wrong, a destination
    it forbids); the text names the proxy and its status, never its credentials."""


class UpstreamTlsFailed(UpstreamConnectFailed):
    """TLS with the upstream failed: a certificate not verified (expired, for another name, from
    a CA not trusted), or no TLS at all; the text says OpenSSL's reason, which holds no secret."""


TLS_SHUTDOWN_SECONDS = 1.0
"""How long a polite close waits for the server's close_notify before the socket is dropped
(asyncio's default, 30 s, kept each idle connection a server left unanswered open that long)."""


def _tls_failed(exc: ssl.SSLError, where: str = "") -> UpstreamTlsFailed:
    return UpstreamTlsFailed(f"TLS with the upstream{where} failed: {tls_reason(exc)}")


class UpstreamTimedOut(UpstreamHttpError):
    """The connect timeout or the read timeout passed."""


class UpstreamBodyTooLarge(UpstreamHttpError):
    """The body is (or decompresses to) more than ``max_body_bytes``."""


class UpstreamBodyCut(UpstreamHttpError):
    """The connection closed, or was reset, after the head and before the body was whole."""


class UpstreamBodyBroken(UpstreamHttpError):
    """The body is whole as framed, but its content encoding could not be decoded."""


class UpstreamAnswerMalformed(UpstreamHttpError):
    """The answer is not HTTP/1.1 as we read it, or its head is over ``max_head_bytes``."""


class _ClosedUnanswered(UpstreamConnectFailed):
    """The connection closed before any byte of the answer came."""


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    """A whole answer: status, headers by lower-case name (the last of a repeated one), body."""

    status: int
    headers: dict[str, str]
    body: bytes | bytearray
    """As read: a ``bytearray`` when it came in pieces (kept in one buffer: a body sent a few
    bytes at a time held a ``bytes`` object per piece, 22 times its size)."""


@dataclass(frozen=True, slots=True)
class _Limits:
    read_timeout: float
    max_body_bytes: int
    max_head_bytes: int


class _Connection(asyncio.Protocol):
    """One connection: one exchange at a time, its answer parsed as it arrives."""

    # The message being read (reset by ``_start_answer`` for each one, a 1xx included).
    _in_head: bool
    _head_received: int
    _field_bytes: int
    _headers: dict[str, str]
    _body: bytes | bytearray
    _compressed: int
    _size: int
    _decompressor: Any
    _until_close: bool

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: _Limits) -> None:
        self._loop = loop
        self._limits = limits
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self.reusable = False
        """Open, and its last answer was whole with keep-alive on both sides."""
        self.idle_since = 0.0
        self._answer: asyncio.Future[UpstreamAnswer] | None = None
        self._failure: UpstreamHttpError | None = None
        self._received = False
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._interim_answers = 0
        self._start_answer()

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self._close()  # bytes nobody asked for: this connection cannot be trusted further
            return
        self._received = True
        self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):  # an upgrade is not an answer here
            self._fail(self._failure or UpstreamAnswerMalformed("the upstream's answer is not valid HTTP/1.1"))
            return
        if self._in_head:  # llhttp keeps a field until it is whole: bound what it keeps meanwhile
            self._head_received += len(data)
            if self._head_received > self._limits.max_head_bytes:
                self._fail(UpstreamAnswerMalformed("the upstream's answer head is over the limit"))

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost decides what the end meant

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._transport = None
        if self._answer is None or self._answer.done():
            return
        if self._until_close and exc is None:
            if self._gzip_unfinished():
                self._fail(UpstreamBodyBroken("the upstream's gzip body ended early"))
            else:
                self._complete()
        elif not self._received and isinstance(exc, ssl.SSLError):  # an alert: a client certificate required...
            self._fail(_tls_failed(exc))
        elif not self._received:
            self._fail(_ClosedUnanswered("the upstream closed the connection without answering"))
        elif self._in_head:  # a connection failure, retried as one: no answer was given
            self._fail(UpstreamConnectFailed("the upstream closed the connection in the middle of its answer's head"))
        else:
            self._fail(UpstreamBodyCut("the upstream closed the connection before the answer was whole"))

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        if self._answer is None or self._answer.done():
            self._refuse(UpstreamAnswerMalformed("the upstream sent more than its answer"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._field_bytes += len(name) + len(value)
        if self._field_bytes > self._limits.max_head_bytes:
            self._refuse(UpstreamAnswerMalformed("the upstream's answer head is over the limit"))
        if self._in_head:  # not a trailer (after a chunked body): those are not the answer's headers
            self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 100:
            self._refuse(UpstreamAnswerMalformed("the upstream's answer has no valid status"))
        if status < 200:
            return  # an interim answer (1xx): the real one follows
        self._in_head = False
        headers = self._headers
        bodiless = status in (204, 304)
        if not bodiless and int(headers.get("content-length", "0") or "0") > self._limits.max_body_bytes:
            self._refuse(UpstreamBodyTooLarge("the upstream's body is over the limit"))
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding == "gzip":
            self._decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding != "identity":
            self._refuse(UpstreamBodyBroken("the upstream's body has an encoding that was not asked for"))
        chunked = headers.get("transfer-encoding", "").rpartition(",")[2].strip().lower() == "chunked"
        self._until_close = "content-length" not in headers and not chunked and not bodiless

    def on_body(self, body: bytes) -> None:
        if self._decompressor is not None:
            body = self._inflate(body)
        self._size += len(body)
        if self._size > self._limits.max_body_bytes:
            self._refuse(UpstreamBodyTooLarge("the upstream's body is over the limit"))
        held = self._body
        if not held:
            self._body = body
        elif isinstance(held, bytearray):
            held += body
        else:  # a second piece: from here on, one buffer
            buffer = bytearray(held)
            buffer += body
            self._body = buffer

    def _inflate(self, data: bytes) -> bytes:
        """``data`` decoded. A gzip body may be several members one after another (RFC 1952), as
        aiohttp reads it; bytes after a member that do not begin another are refused (by the
        next decoder, or as a body that ended early)."""
        self._compressed += len(data)
        decoder = self._decompressor
        pieces = []
        room = self._limits.max_body_bytes - self._size + 1
        while data:
            try:
                piece = decoder.decompress(data, room)
            except zlib.error:
                self._refuse(UpstreamBodyBroken("the upstream's gzip body could not be decoded"))
            room -= len(piece)
            if decoder.unconsumed_tail or room <= 0:
                self._refuse(UpstreamBodyTooLarge("the upstream's body is over the limit"))
            pieces.append(piece)
            data = decoder.unused_data  # after the end of a member: the next one
            if data:
                decoder = self._decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return b"".join(pieces)  # one piece (the usual case) is returned as it is, not copied

    def _gzip_unfinished(self) -> bool:
        """Whether a gzip body began and its last member has not ended."""
        decoder = self._decompressor
        return decoder is not None and not decoder.eof and self._compressed > 0

    def on_message_complete(self) -> None:
        if self._parser.get_status_code() < 200:
            self._interim_answers += 1
            if self._interim_answers > MAX_INTERIM_ANSWERS:
                self._refuse(UpstreamAnswerMalformed("the upstream sent interim answers without end"))
            self._start_answer()
            return
        if self._gzip_unfinished():
            self._refuse(UpstreamBodyBroken("the upstream's gzip body ended early"))
        self.reusable = self._parser.should_keep_alive()
        self._complete()

    # -- the exchange

    def _refuse(self, failure: UpstreamHttpError) -> None:
        """Stop reading the answer (from a parser callback: the parser then raises)."""
        self._failure = failure
        raise failure

    def _start_answer(self) -> None:
        self._in_head, self._head_received, self._field_bytes = True, 0, 0
        self._headers, self._body, self._size, self._compressed = {}, b"", 0, 0
        self._decompressor, self._until_close = None, False

    def _complete(self) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            body, self._body = self._body, b""  # an idle connection holds none of its last answer
            answer.set_result(UpstreamAnswer(self._parser.get_status_code(), self._headers, body))

    def _fail(self, failure: UpstreamHttpError) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            if not self._in_head and failure.head is None:
                failure.head = UpstreamAnswer(self._parser.get_status_code(), self._headers, b"")
            answer.set_exception(failure)
        self._close()

    def _close(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.abort()
            self._transport = None

    def _check_silence(self) -> None:
        due = self._last_read + self._limits.read_timeout
        if self._loop.time() < due:
            self._timer = self._loop.call_at(due, self._check_silence)
            return
        self._timer = None
        self._fail(UpstreamTimedOut("the upstream was silent for longer than the read timeout"))

    async def exchange(self, request: bytes) -> UpstreamAnswer:
        """Send ``request`` and wait for its whole answer; the connection is closed unless the
        answer came whole and keep-alive holds."""
        transport = self._transport
        if transport is None:
            raise _ClosedUnanswered("the upstream closed the connection")
        self._start_answer()
        self.reusable, self._failure, self._received, self._interim_answers = False, None, False, 0
        answer: asyncio.Future[UpstreamAnswer] = self._loop.create_future()
        self._answer = answer
        transport.write(request)
        self._last_read = self._loop.time()
        self._timer = self._loop.call_at(self._last_read + self._limits.read_timeout, self._check_silence)
        try:
            return await answer
        except BaseException:  # failed, or cancelled (perhaps just after the answer came): never reused
            self._close()
            raise
        finally:
            self._answer = None  # nor the answer (what comes while none is awaited is refused alike)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def close(self) -> None:
        """Close now, whatever is in flight."""
        self._fail(UpstreamConnectFailed("the connection was closed"))

    def close_idle(self) -> None:
        """Close a connection with nothing in flight, politely: over TLS a close_notify first
        (an abort looks like a truncation to the server, which logs it as one)."""
        self.reusable = False
        if self._transport is not None:
            self._transport.close()
            self._transport = None


class UpstreamConnections:
    """The upstream's keep-alive connections (see the module docstring)."""

    def __init__(
        self,
        endpoint: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_body_bytes: int,
        max_head_bytes: int,
        max_connections: int = 100,
        ssl_context: ssl.SSLContext | None = None,
        proxy: ProxyServer | None = None,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the upstream endpoint must be an http(s) URL with a host")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._host_header = parts.netloc.rpartition("@")[2]
        self._ssl = (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        self._proxy = proxy
        self._upstream = "the upstream" if proxy is None else f"the upstream through the proxy {proxy.url}"
        forwarded = proxy is not None and self._ssl is None  # plain http through the proxy: absolute form
        self._target_prefix = f"http://{self._host_header}" if forwarded else ""
        self._proxy_lines = ""
        if proxy is not None and forwarded:
            self._proxy_lines = "".join(f"{name}: {value}\r\n" for name, value in proxy.headers().items())
        self._connect_timeout = connect_timeout
        self._limits = _Limits(read_timeout, max_body_bytes, max_head_bytes)
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._closed = False
        self._sweep: asyncio.TimerHandle | None = None
        """The timer closing idle connections when no call comes to (``_close_idle``)."""

    async def get(self, target: str, headers: Mapping[str, str]) -> UpstreamAnswer:
        """GET ``target`` (origin form, sent as given) with ``headers``; the whole answer."""
        request = self._request(target, headers)
        loop = asyncio.get_running_loop()
        connect_by = loop.time() + self._connect_timeout  # for a slot and a new connection together
        await self._slot(connect_by)
        try:
            connection = self._kept(loop.time())
            if connection is not None:
                try:
                    return await self._exchange(loop, connection, request)
                except _ClosedUnanswered:
                    pass  # closed while idle: once more on a new connection
            return await self._exchange(loop, await self._connect(loop, connect_by), request)
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        """Close every idle connection; those in use close when their call ends."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close_idle()

    async def _slot(self, connect_by: float) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns at once
            return
        try:
            async with asyncio.timeout_at(connect_by):
                await self._slots.acquire()
        except TimeoutError:
            raise UpstreamTimedOut("no upstream connection was free within the connect timeout") from None

    def _request(self, target: str, headers: Mapping[str, str]) -> bytes:
        lines = [f"GET {self._target_prefix}{target} HTTP/1.1\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        if not any(name.lower() == "host" for name in headers):
            lines.append(f"Host: {self._host_header}\r\n")
        lines.append(_ACCEPT_ENCODING)
        lines.append(self._proxy_lines)
        head = "".join(lines)
        if _CONTROL.search(" ".join((target, *headers, *headers.values()))) or " " in target or "\r\n:" in head:
            raise ValueError("a line break or other control character, a space in the target, or an empty header name")
        return head.encode("utf-8") + b"\r\n"

    def _kept(self, now: float) -> _Connection | None:
        """The newest idle connection still open and not idle too long; those idle too long are
        closed."""
        self._close_expired(now)
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.reusable and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.close_idle()
        return None

    def _close_expired(self, now: float) -> None:
        """Close the connections idle for ``IDLE_SECONDS`` or more (the oldest first: the list is
        in the order they fell idle)."""
        idle = self._idle
        while idle and now - idle[0].idle_since >= IDLE_SECONDS:
            idle.pop(0).close_idle()

    def _close_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        """The timer's turn: close what was idle too long, as the next call would, so a quiet
        gateway does not hold connections open until the upstream closes them; come back when
        the oldest one left is due."""
        now = loop.time()
        self._close_expired(now)
        idle = self._idle
        self._sweep = loop.call_later(idle[0].idle_since + IDLE_SECONDS - now, self._close_idle, loop) if idle else None

    async def _connect(self, loop: asyncio.AbstractEventLoop, connect_by: float) -> _Connection:
        limits, proxy, tls = self._limits, self._proxy, self._ssl
        server_hostname = self._host.rstrip(".") if tls is not None else None
        tls_shutdown = TLS_SHUTDOWN_SECONDS if tls is not None else None
        try:
            async with asyncio.timeout_at(connect_by):
                if proxy is not None and tls is not None:
                    return await self._tunnelled(loop, proxy, tls, server_hostname)
                host, port = (self._host, self._port) if proxy is None else (proxy.host, proxy.port)
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop, limits),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=server_hostname,
                    ssl_shutdown_timeout=tls_shutdown,
                )
        except TimeoutError:
            raise UpstreamTimedOut(f"{self._upstream} did not accept a connection within the connect timeout") from None
        except ssl.SSLError as exc:  # ssl.CertificateError among them
            raise _tls_failed(exc, "" if proxy is None else f" (through the proxy {proxy.url})") from None
        except TunnelRefused as exc:
            raise UpstreamProxyRefused(f"could not connect to {self._upstream}: {exc}") from None
        except OSError as exc:
            raise UpstreamConnectFailed(f"could not connect to {self._upstream} ({type(exc).__name__})") from None
        return connection

    async def _tunnelled(
        self, loop: asyncio.AbstractEventLoop, proxy: ProxyServer, tls: ssl.SSLContext, server_hostname: str | None
    ) -> _Connection:
        """A TLS connection to the upstream inside a CONNECT tunnel of ``proxy``."""
        transport = await open_tunnel(loop, proxy, self._host, self._port)
        connection = _Connection(loop, self._limits)
        try:
            inside = await loop.start_tls(
                transport,
                connection,
                tls,
                server_hostname=server_hostname,
                ssl_shutdown_timeout=TLS_SHUTDOWN_SECONDS,
            )
        except BaseException:
            transport.abort()
            raise
        assert inside is not None  # None only for a transport closed meanwhile, which raised above
        connection.connection_made(inside)  # start_tls does not call it
        return connection

    async def _exchange(
        self, loop: asyncio.AbstractEventLoop, connection: _Connection, request: bytes
    ) -> UpstreamAnswer:
        answer = await connection.exchange(request)
        if connection.reusable and not self._closed:
            connection.idle_since = loop.time()
            self._idle.append(connection)
            if self._sweep is None:
                self._sweep = loop.call_later(IDLE_SECONDS, self._close_idle, loop)
        else:
            connection.close_idle()  # whoever said close, we need not wait for the other side
        if answer.status == PROXY_AUTHENTICATION_REQUIRED and self._target_prefix:  # the proxy's, not the upstream's
            raise UpstreamProxyRefused(f"could not reach {self._upstream}: {refusal(answer.status)}")
        return answer
