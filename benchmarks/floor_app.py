"""The floor: the least a Python server on this event loop can do per request.

    python benchmarks/floor_app.py --port 8098 --body body.json --content-type application/json \
        [--loop uvloop] [--busy-us 12] [--turn-end-us 1] [--write-at-once]

An ``asyncio.Protocol`` that answers every request head it receives (everything up to a blank
line) with the same fixed response: no parsing, no routing, no headers computed, no log. What is
left is the event loop, one read and one write per request and the kernel's loopback: the part of
a hit's cost no Python code can remove. ``benchmarks/run.py`` starts it with the gateway's exact
hit bytes; the µs a server spends per hit above this floor is what its own code costs.

Its answers are written as the gateway writes its hits: under load (more than one connection
answered in the loop's last turn) held until the loop has run the turn's reads, then written
together; else at once (the gateway's own ``TurnWrites``, ``gateway.fastpath.turn_writes``;
since stop 34, when the gateway began to; until then each answer was written as it was made,
as ``--write-at-once`` still does). A floor that wrote each answer at once would cost more per
request than the gateway's way, and the µs above it would understate what the gateway's own code
costs.

``--busy-us N`` spins N µs per request before answering: a server whose own code costs exactly
that much and never stalls, to see what throughput and latency percentiles that alone gives.
``--turn-end-us M`` spins M µs more per request answered, all at the end of the loop's turn,
once its answers are written, as the gateway does its counters' and log lines' batch work
(``ResponseTail.end_turn``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import cast

from bare_app import loop_factory

from gateway.fastpath.turn_writes import TurnWrites

END_OF_HEAD = b"\r\n\r\n"


class TurnEndWork:
    """Work owed for the requests answered in this turn of the loop, done at its end."""

    def __init__(self, seconds_per_request: float) -> None:
        self.seconds_per_request = seconds_per_request
        self._owed = 0.0

    def owe(self, requests: int) -> None:
        """Note ``requests`` answered; the turn's first note schedules the work (after the turn's
        held answers are written: their writes were scheduled by its first answer)."""
        if not self._owed:
            asyncio.get_running_loop().call_soon(self._do)
        self._owed += self.seconds_per_request * requests

    def _do(self) -> None:
        spin(self._owed)
        self._owed = 0.0


class FixedAnswers(asyncio.Protocol):
    """Answers each request head with ``response``: through ``writes`` as the gateway writes
    (held for the turn's end under load), or at once without."""

    def __init__(self, response: bytes, busy_seconds: float, turn_end: TurnEndWork, writes: TurnWrites | None) -> None:
        self._response = response
        self._busy_seconds = busy_seconds
        self._turn_end = turn_end
        self._writes = writes
        self._transport: asyncio.Transport | None = None
        self._pending = b""
        self._held = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        data = self._pending + data
        heads = data.count(END_OF_HEAD)
        self._pending = data[data.rfind(END_OF_HEAD) + len(END_OF_HEAD) :] if heads else data
        if heads and self._transport is not None:
            if self._busy_seconds:
                spin(self._busy_seconds * heads)
            if self._writes is not None:
                self._writes.answered(self)
            if self._writes is None or not self._writes.holding:
                self._transport.write(self._response * heads)
            else:
                self._held += self._response * heads
            if self._turn_end.seconds_per_request:
                self._turn_end.owe(heads)

    def write_held(self) -> None:
        """Write the answers held for the end of the turn."""
        held, self._held = self._held, b""
        if held and self._transport is not None and not self._transport.is_closing():
            self._transport.write(held)

    def force_close(self) -> None:
        """Close the connection (its write failed)."""
        if self._transport is not None:
            self._transport.close()


def spin(seconds: float) -> None:
    """Keep the core busy for ``seconds`` (a server's own work, standing in; it never stalls)."""
    spin_until = time.perf_counter() + seconds
    while time.perf_counter() < spin_until:
        pass


def _report(exc: Exception) -> None:
    print(f"a write failed: {exc!r}", file=sys.stderr)


def http_response(body: bytes, content_type: str) -> bytes:
    """A keep-alive HTTP/1.1 200 carrying ``body``."""
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("latin-1") + body


async def serve(
    response: bytes, host: str, port: int, busy_seconds: float, turn_end_seconds: float, write_at_once: bool
) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    turn_end = TurnEndWork(turn_end_seconds)
    writes = None if write_at_once else TurnWrites(loop, lambda: None, failed=_report)
    server = await loop.create_server(lambda: FixedAnswers(response, busy_seconds, turn_end, writes), host, port)
    print(f"floor app listening on http://{host}:{port}", file=sys.stderr, flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    """Read the body and serve it until signalled."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True, help="file with the bytes to answer")
    parser.add_argument("--content-type", required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "rloop"), default="asyncio")
    parser.add_argument("--busy-us", type=float, default=0.0, help="µs to spin per request before answering")
    parser.add_argument("--turn-end-us", type=float, default=0.0, help="µs to spin per request at the turn's end")
    parser.add_argument("--write-at-once", action="store_true", help="write each answer as it is made")
    args = parser.parse_args()
    response = http_response(args.body.read_bytes(), args.content_type)
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        spun = (args.busy_us / 1e6, args.turn_end_us / 1e6)
        runner.run(serve(response, args.host, args.port, *spun, args.write_at_once))


if __name__ == "__main__":
    main()
