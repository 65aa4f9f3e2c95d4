"""A CONNECT tunnel through a forward proxy (RFC 9110 9.3.6): a TCP connection to the proxy on
which ``CONNECT host:port`` was answered 2xx, ready for TLS with the host. The proxy's
credentials, if it has any, go in the CONNECT request only: nothing sent inside the tunnel
carries them."""

from __future__ import annotations

import asyncio

from gateway.outbound import ProxyServer

PROXY_AUTHENTICATION_REQUIRED = 407
MAX_ANSWER_HEAD_BYTES = 16384
"""The most of the proxy's answer to CONNECT read before it must have ended its head."""


class TunnelRefused(Exception):
    """The proxy did not open the tunnel; the text says why (its status, never what it sent)."""


async def open_tunnel(loop: asyncio.AbstractEventLoop, proxy: ProxyServer, host: str, port: int) -> asyncio.Transport:
    """A transport through ``proxy`` to ``host:port``, not yet read (TLS starts on it next).
    Raises ``TunnelRefused``, or ``OSError`` when the proxy cannot be reached."""
    transport, opening = await loop.create_connection(lambda: _Opening(loop), proxy.host, proxy.port)
    try:
        transport.write(connect_request(proxy, host, port))
        await opening.answered
    except BaseException:
        transport.abort()
        raise
    return transport


def connect_request(proxy: ProxyServer, host: str, port: int) -> bytes:
    """The CONNECT request for ``host:port``, with the proxy's credentials."""
    name = host.encode("idna").decode("ascii")
    authority = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1\r\n", f"Host: {authority}\r\n"]
    lines.extend(f"{field}: {value}\r\n" for field, value in proxy.headers().items())
    lines.append("\r\n")
    return "".join(lines).encode("ascii")


class _Opening(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT, up to its blank line; ``answered`` says how it went."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.answered: asyncio.Future[None] = loop.create_future()
        # Retrieved here too: the connect timeout may call the opening off in the very turn the
        # connection is made, and its loss then fails a future nobody awaits any more.
        self.answered.add_done_callback(lambda answered: answered.cancelled() or answered.exception())
        self._head = bytearray()

    def data_received(self, data: bytes) -> None:
        if self.answered.done():
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_ANSWER_HEAD_BYTES:
                self._refused("the proxy's answer to CONNECT is over 16 KiB")
            return
        status = _status(bytes(self._head[:end]))
        if status is None:
            self._refused("the proxy's answer to CONNECT is not HTTP/1.x")
        elif not 200 <= status < 300:
            self._refused(refusal(status))
        elif end + 4 != len(self._head):
            self._refused("the proxy sent data past its answer to CONNECT")
        else:
            self.answered.set_result(None)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._refused("the proxy closed the connection before opening the tunnel")

    def _refused(self, why: str) -> None:
        if not self.answered.done():
            self.answered.set_exception(TunnelRefused(why))


def refusal(status: int) -> str:
    """Why a proxy answering ``status`` to a request for the upstream refused it, in words."""
    if status == PROXY_AUTHENTICATION_REQUIRED:
        return "the proxy wants credentials (407): the proxy URL's user and password are missing or wrong"
    return f"the proxy refused the tunnel ({status})"


def _status(head: bytes) -> int | None:
    """The status of an answer head, ``None`` if its first line is not an HTTP/1.x status line."""
    parts = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3 or not parts[1].isdigit():
        return None
    return int(parts[1])
