"""Running the gateway as a server process, with a graceful drain on SIGTERM/SIGINT.

On the signal: ``/readyz`` turns 503 at once; the listener stays open ``drain_seconds`` so
load balancers see it and stop sending; then new connections are refused, requests in flight
get up to ``shutdown_grace_seconds`` to finish, and the process exits 0. A second signal during
all that (Ctrl-C pressed again) ends the drain and the grace at once: the requests still in
flight are called off and their connections closed, the app's clean-up runs as usual, and the
process exits with 128 + the signal's number, as a shell reports a command the signal ended.

Start-up and drain are logged as JSON lines (``gateway.observability.logs``). Port 0 binds an
ephemeral port; the start-up line gives the port actually bound.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from typing import Any

from aiohttp import web

from gateway import __version__
from gateway.config.settings import ServerSettings
from gateway.fastpath.protocol import GatewayRunner
from gateway.observability.logs import log_event
from gateway.web.appkeys import LIFECYCLE

LISTEN_BACKLOG = 1024
_log = logging.getLogger("gateway.server")


def bound_port(runner: web.BaseRunner) -> int:
    """The port ``runner``'s first site listens on (the real one when asked for port 0)."""
    return int(runner.addresses[0][1])


def connection_options(server: ServerSettings) -> dict[str, Any]:
    """The ``GatewayRunner`` options ``serve`` and the demo take from ``[server]``: how long an idle
    connection is kept (aiohttp's ``AppRunner`` keeps one an hour), how many may be open, and no
    aiohttp access log (the gateway writes its own)."""
    return {
        "access_log": None,
        "keepalive_timeout": server.keepalive_seconds,
        "max_connections": server.max_connections,
    }


async def serve_until_signalled(app: web.Application, server: ServerSettings) -> int:
    """Serve ``app`` on ``server.host:port`` until SIGTERM or SIGINT, then drain and stop; the
    exit status: 0, or 128 + the number of a second signal that stopped it at once."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    second: asyncio.Future[int] = loop.create_future()

    def signalled(signum: int) -> None:
        if not stop.is_set():
            stop.set()
        elif not second.done():
            second.set_result(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signalled, sig)
    runner = GatewayRunner(app, shutdown_timeout=server.shutdown_grace_seconds, **connection_options(server))
    await runner.setup()
    try:
        # A deep accept queue: bursts of new connections wait instead of needing SYN retransmits.
        try:
            await web.TCPSite(runner, server.host, server.port, backlog=LISTEN_BACKLOG).start()
        except OSError as exc:  # said with the address: "Name or service not known" alone names nothing
            raise OSError(exc.errno, f"cannot listen on {server.host}:{server.port}: {exc.strerror or exc}") from exc
        # Everything made at start-up (modules, config, the app) lives as long as the process:
        # kept out of the collector, a full collection no longer walks it while serving.
        gc.freeze()
        port = bound_port(runner)
        log_event(
            _log,
            f"metastudio-gateway {__version__} listening on {server.host}:{port}",
            event="listening",
            host=server.host,
            port=port,
            version=__version__,
        )
        await stop.wait()
        app[LIFECYCLE].ready = False
        log_event(
            _log,
            f"draining: not ready, accepting for {server.drain_seconds:g} s more",
            event="draining",
            drain_seconds=server.drain_seconds,
            shutdown_grace_seconds=server.shutdown_grace_seconds,
        )
        await asyncio.wait([second], timeout=server.drain_seconds)
    finally:
        stopping: asyncio.Future[Any] = asyncio.ensure_future(runner.cleanup())
        await asyncio.wait([stopping, second], return_when=asyncio.FIRST_COMPLETED)
        cut = not stopping.done()
        if cut:  # a second signal: the requests in flight are called off, the grace ends now
            runner.cut_short()
        await stopping
    if cut:
        signum = second.result()
        name = signal.Signals(signum).name
        log_event(_log, f"stopped at once on a second signal ({name})", event="stopped", forced_by=name)
        return 128 + signum
    log_event(_log, "stopped", event="stopped")
    return 0
