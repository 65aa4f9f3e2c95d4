"""A TCP relay between the replicas and Redis that can drop its connections without a word (what
a NAT, a load balancer or a failover in between does when it forgets a connection), and can put
Redis further away."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class SilentRelay:
    """Relays each connection to ``target_port``, each way ``delay`` seconds later;
    ``drop_silently`` ends the ones open now."""

    def __init__(self, target_port: int, delay: float = 0.0) -> None:
        self._target_port = target_port
        self._delay = delay
        self._loop = asyncio.new_event_loop()
        self._links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, list[asyncio.Task[None]]]] = []
        self._silenced: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        redis_reader, redis_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        pumps = [
            asyncio.ensure_future(_pump(client_reader, redis_writer, self._delay)),
            asyncio.ensure_future(_pump(redis_reader, client_writer, self._delay)),
        ]
        self._links.append((client_writer, redis_writer, pumps))

    async def _drop_silently(self) -> int:
        links, self._links = self._links, []
        for client_writer, redis_writer, pumps in links:
            for pump in pumps:
                pump.cancel()
            redis_writer.close()  # Redis sees the connection end
            client_writer.transport.pause_reading()  # the replica sees nothing, ever
            self._silenced.append(client_writer)
        return len(links)

    def drop_silently(self) -> int:
        """End every connection open now on Redis's side only: the replica's side stays open and
        hears nothing more. New connections are relayed as before. The number dropped."""
        return asyncio.run_coroutine_threadsafe(self._drop_silently(), self._loop).result(timeout=5)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        writers = list(self._silenced)
        for client_writer, redis_writer, pumps in self._links:
            for pump in pumps:
                pump.cancel()
            writers += [client_writer, redis_writer]
        for writer in writers:
            writer.close()
        for writer in writers:
            with suppress(ConnectionError):
                await writer.wait_closed()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    with suppress(ConnectionError):
        while chunk := await reader.read(65536):
            if delay:
                await asyncio.sleep(delay)
            writer.write(chunk)
            await writer.drain()
    writer.close()


@contextmanager
def silent_relay(target_port: int, delay: float = 0.0) -> Iterator[SilentRelay]:
    """A ``SilentRelay`` to ``target_port`` on a loopback port of its own, in a thread of its own."""
    relay = SilentRelay(target_port, delay)
    thread = threading.Thread(target=relay._loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(relay._start(), relay._loop).result(timeout=5)
        yield relay
    finally:
        asyncio.run_coroutine_threadsafe(relay._close(), relay._loop).result(timeout=5)
        relay._loop.call_soon_threadsafe(relay._loop.stop)
        thread.join(timeout=5)
        relay._loop.close()
