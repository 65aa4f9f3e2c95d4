"""Scripted upstream servers for tests: a loopback server that runs a script per connection and
keeps the request heads it read, to answer exactly the bytes a test needs (the simulator only
answers well-formed HTTP)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
Script = Callable[["Server", int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
"""Serves one connection: the server (to read heads with), the connection's number (from 0),
its reader and writer."""


class Server:
    """A loopback server running a script per connection; keeps each request head it read."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.closed = 0
        """Connections whose script ended: the client closed them, or the script finished."""
        self.heads: list[bytes] = []
        self._ended = asyncio.Event()

    async def read_head(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        return head

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self.connections
        self.connections += 1
        try:
            await self.script(self, number, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed += 1
            self._ended.set()
            writer.close()

    async def until_closed(self, count: int) -> None:
        """Wait (at most 2 s) until ``count`` connections have ended."""
        async with asyncio.timeout(2):
            while self.closed < count:
                self._ended.clear()
                await self._ended.wait()


@asynccontextmanager
async def serving(script: Script, tls: ssl.SSLContext | None = None) -> AsyncIterator[tuple[Server, str]]:
    server = Server(script)
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield server, f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        listener.close()


def answering(*answers: bytes) -> Script:
    """Each connection reads a head and sends the next answer, as long as answers remain."""
    remaining = list(answers)

    async def script(server: Server, _number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while remaining:
            await server.read_head(reader)
            writer.write(remaining.pop(0))
            await writer.drain()

    return script


def answers(*wire: bytes) -> AbstractAsyncContextManager[tuple[Server, str]]:
    """A plain-HTTP server sending these answers in turn."""
    return serving(answering(*wire))
