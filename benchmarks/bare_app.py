"""The physical-limit baseline: a bare aiohttp app that returns fixed bytes, nothing else.

    python benchmarks/bare_app.py --port 8099 --body body.json --content-type application/json \
        [--gzip-body body.json.gz] [--loop uvloop]

``GET /`` answers the body with the given ``Content-Type``; ``GET /gzip`` (when ``--gzip-body``
is given) answers the pre-compressed bytes with ``Content-Encoding: gzip``. No routing beyond
that, no middleware, no access log: what aiohttp itself costs per request on this event loop.
``benchmarks/run.py`` starts it with the exact bytes the gateway serves on a cache hit.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fixed_response(body: bytes, headers: dict[str, str]) -> Handler:
    """A handler that answers every request with ``body`` and ``headers``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers=headers)

    return handler


def build_app(body: bytes, content_type: str, gzip_body: bytes | None) -> web.Application:
    """The app: ``/`` serves ``body``; ``/gzip`` serves ``gzip_body`` gzip-encoded, if given."""
    app = web.Application()
    app.router.add_get("/", fixed_response(body, {"Content-Type": content_type}))
    if gzip_body is not None:
        gzip_headers = {"Content-Type": content_type, "Content-Encoding": "gzip"}
        app.router.add_get("/gzip", fixed_response(gzip_body, gzip_headers))
    return app


async def serve(app: web.Application, host: str, port: int) -> None:
    """Serve ``app`` until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        print(f"bare app listening on http://{host}:{port}", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop constructor for ``name`` (``uvloop``, ``rloop`` or ``asyncio``)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if name == "rloop":
        import rloop

        return cast("Callable[[], asyncio.AbstractEventLoop]", rloop.new_event_loop)
    return asyncio.new_event_loop


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True, help="file with the bytes to answer")
    parser.add_argument("--content-type", required=True)
    parser.add_argument("--gzip-body", type=Path, help="file with the gzip bytes to answer on /gzip")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    return parser.parse_args()


def main() -> None:
    """Read the bodies and serve them until signalled."""
    args = parse_args()
    gzip_body = args.gzip_body.read_bytes() if args.gzip_body else None
    app = build_app(args.body.read_bytes(), args.content_type, gzip_body)
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(serve(app, args.host, args.port))


if __name__ == "__main__":
    main()
