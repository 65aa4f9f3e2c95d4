"""Why a hit's p99 sits at about two p50s: level-triggered epoll (libuv's) against edge-triggered (nginx's).

    .venv/bin/python benchmarks/epoll_tails.py                 # 4 rounds of 5 s per server (about 3 minutes)
    .venv/bin/python benchmarks/epoll_tails.py --rounds 2 --busy-us 5 --turn-end-us 1

Five servers answer every request head with the same fixed 8.6 KB response after spinning the
same few µs (``--busy-us``, standing in for a hit's own work, so they run near the gateway's
throughput), one at a time on the server core with wrk (``-t1 -c50``) on the client core, in
rounds whose order rotates:

- ``floor_app.py --loop uvloop --busy-us``: an asyncio protocol on uvloop, as the gateway ran
  until stop 22 (each answer written as it is made, ``--write-at-once`` here, as the gateway
  wrote until stop 34);
- the same with ``--turn-end-us`` of those µs per request spun at the end of the loop's turn
  instead (the same work in all), as the gateway now does its batch work (``ResponseTail``);
- the same protocol on rloop, an asyncio loop in Rust on mio, which registers sockets
  edge-triggered (the ``bench`` extra; ``benchmarks/loop_tails.py`` runs the gateway on it);
- a raw ``select.epoll`` loop in Python registering each connection level-triggered (as libuv
  does): one ``recv`` per event;
- the same loop registering each connection edge-triggered (``EPOLLET``, as nginx does): it reads
  until ``EAGAIN``, since an edge is not reported again.

It prints each round's req/s, p50, p99 and p99 over p50, then each server's medians. The two raw
loops differ in the epoll flag (and the read that drains an edge-triggered socket) only. Prints
figures; asserts nothing. The raw loops are diagnostics, not servers: a send the socket does not
take whole is finished blocking.
"""

from __future__ import annotations

import argparse
import select
import socket
import statistics
import sys
import tempfile
from pathlib import Path

from floor_app import END_OF_HEAD, http_response, spin
from perf import wrk
from perf.system import Cpus, started
from run import pin_self

from tests.stack import free_port

BODY = b"x" * 8600
TURN_END = "uvloop, turn-end work"
SERVERS = ("uvloop", TURN_END, "rloop", "epoll level-triggered", "epoll edge-triggered")


def serve_epoll(port: int, edge_triggered: bool, busy_seconds: float) -> None:
    """Answer every request head on ``port`` with ``BODY`` after spinning ``busy_seconds``, forever."""
    response = http_response(BODY, "application/json")
    listener = socket.create_server(("127.0.0.1", port), backlog=1024)
    listener.setblocking(False)
    poll = select.epoll()
    poll.register(listener.fileno(), select.EPOLLIN)
    flags = select.EPOLLIN | (select.EPOLLET if edge_triggered else 0)
    connections: dict[int, tuple[socket.socket, list[bytes]]] = {}
    while True:
        for fd, _events in poll.poll(-1, 1024):
            if fd == listener.fileno():
                _accept_all(listener, poll, flags, connections)
                continue
            connection, pending = connections[fd]
            data = _received(connection, drain=edge_triggered)
            if data is None:
                poll.unregister(fd)
                connection.close()
                del connections[fd]
                continue
            data = pending[0] + data
            heads = data.count(END_OF_HEAD)
            pending[0] = data[data.rfind(END_OF_HEAD) + len(END_OF_HEAD) :] if heads else data
            if heads:
                spin(busy_seconds * heads)
                _send(connection, response * heads)


def _accept_all(
    listener: socket.socket, poll: select.epoll, flags: int, connections: dict[int, tuple[socket.socket, list[bytes]]]
) -> None:
    while True:
        try:
            connection, _address = listener.accept()
        except BlockingIOError:
            return
        connection.setblocking(False)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connections[connection.fileno()] = (connection, [b""])
        poll.register(connection.fileno(), flags)


def _received(connection: socket.socket, *, drain: bool) -> bytes | None:
    """What the socket holds (``None``: the peer is gone). One ``recv`` unless ``drain``, which
    reads until ``EAGAIN``, as an edge-triggered socket must."""
    data = b""
    while True:
        try:
            chunk = connection.recv(65536)
        except BlockingIOError:
            return data
        except ConnectionError:
            return None
        if not chunk:
            return None
        data += chunk
        if not drain and len(chunk) < 65536:
            return data


def _send(connection: socket.socket, data: bytes) -> None:
    try:
        sent = connection.send(data)
    except BlockingIOError:
        sent = 0
    if sent < len(data):
        connection.setblocking(True)
        connection.sendall(data[sent:])
        connection.setblocking(False)


def rotated(servers: tuple[str, ...], index: int) -> tuple[str, ...]:
    """Round ``index``'s order: each server goes first in turn."""
    shift = index % len(servers)
    return servers[shift:] + servers[:shift]


def print_round(index: int, server: str, result: wrk.WrkResult) -> None:
    """One round of one server."""
    print(
        f"round {index + 1} {server:<22} {result.rps:>8,.0f} req/s  p50 {result.p50_ms:.2f} ms  "
        f"p99 {result.p99_ms:.2f} ms  p99/p50 {result.p99_ms / result.p50_ms:.2f}",
        flush=True,
    )


def print_medians(figures: dict[str, list[wrk.WrkResult]]) -> None:
    """Each server's medians over its rounds."""
    for server, results in figures.items():
        rps = statistics.median(result.rps for result in results)
        p50 = statistics.median(result.p50_ms for result in results)
        p99 = statistics.median(result.p99_ms for result in results)
        shape = statistics.median(result.p99_ms / result.p50_ms for result in results)
        print(f"  {server:<22} {rps:>8,.0f} req/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms  p99/p50 {shape:.2f}")


def _command(server: str, port: int, busy_us: float, turn_end_us: float, body_file: Path) -> list[str]:
    here = Path(__file__).resolve().parent
    floor = [sys.executable, str(here / "floor_app.py"), "--port", str(port), "--body", str(body_file)]
    floor += ["--content-type", "application/json", "--write-at-once"]  # as the gateway wrote until stop 34
    if server == TURN_END:
        return [*floor, "--loop", "uvloop", "--busy-us", str(busy_us - turn_end_us), "--turn-end-us", str(turn_end_us)]
    if server in ("uvloop", "rloop"):
        return [*floor, "--loop", server, "--busy-us", str(busy_us)]
    mode = "--edge-triggered" if server == "epoll edge-triggered" else "--level-triggered"
    return [sys.executable, __file__, "--serve", str(port), mode, "--busy-us", str(busy_us)]


def main() -> None:
    """Serve (``--serve``) or run the rounds and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--busy-us", type=float, default=5.0)
    parser.add_argument("--turn-end-us", type=float, default=1.0, help="of --busy-us, done at the turn's end")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--edge-triggered", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--level-triggered", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        serve_epoll(arguments.serve, arguments.edge_triggered, arguments.busy_us / 1e6)
        return
    cpus = Cpus(server=0, client=1)
    pin_self(cpus)
    figures: dict[str, list[wrk.WrkResult]] = {server: [] for server in SERVERS}
    with tempfile.TemporaryDirectory(prefix="epoll-tails-") as scratch:
        work = Path(scratch)
        body_file = work / "body.json"
        body_file.write_bytes(BODY)
        for index in range(arguments.rounds):
            order = rotated(SERVERS, index)
            for server in order:
                port = free_port()
                command = [
                    *cpus.server_wrap(),
                    *_command(server, port, arguments.busy_us, arguments.turn_end_us, body_file),
                ]
                url = f"http://127.0.0.1:{port}/"
                with started(command, work / "server.log", url) as process:
                    target = wrk.Target(server, url, process.pid)
                    wrk.run(cpus, work, target, connections=50, seconds=1)
                    result = wrk.run(cpus, work, target, connections=50, seconds=arguments.seconds)
                figures[server].append(result)
                print_round(index, server, result)
    print(f"medians of {arguments.rounds} rounds, wrk -t1 -c50, {arguments.busy_us:g} µs of work per request:")
    print_medians(figures)


if __name__ == "__main__":
    main()
