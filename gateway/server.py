"""Running the gateway as a server process, with a graceful drain on SIGTERM/SIGINT.

On the signal: ``/readyz`` turns 503 at once; the listener stays open ``drain_seconds`` so
load balancers see it and stop sending; then new connections are refused, requests in flight
get up to ``shutdown_grace_seconds`` to finish, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiohttp import web

from gateway import __version__
from gateway.config.settings import ServerSettings
from gateway.fastpath.protocol import GatewayRunner
from gateway.web.appkeys import LIFECYCLE

LISTEN_BACKLOG = 1024


async def serve_until_signalled(app: web.Application, server: ServerSettings) -> None:
    """Serve ``app`` on ``server.host:port`` until SIGTERM or SIGINT, then drain and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = GatewayRunner(app, access_log=None, shutdown_timeout=server.shutdown_grace_seconds)
    await runner.setup()
    try:
        # A deep accept queue: bursts of new connections wait instead of needing SYN retransmits.
        await web.TCPSite(runner, server.host, server.port, backlog=LISTEN_BACKLOG).start()
        print(f"metastudio-gateway {__version__} listening on {server.host}:{server.port}", file=sys.stderr)
        await stop.wait()
        app[LIFECYCLE].ready = False
        print("metastudio-gateway: draining", file=sys.stderr)
        await asyncio.sleep(server.drain_seconds)
    finally:
        await runner.cleanup()
