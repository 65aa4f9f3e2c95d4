"""Where one cache hit's Python time goes: each piece of ``HitResponder.answer`` timed in a loop.

    python benchmarks/hit_pieces.py            # about 20 seconds

Starts the simulator (a real process on loopback), builds the gateway app in this process with
the benchmark's tenant and config, fills the benchmark key through the handler chain, then times
``HitResponder.answer`` on the benchmark request's head (with ``settle``, the batch work the
connection does after writing the answers) and each call it makes, 100,000 times each with
``timeit`` (best of 3). A diagnostic: it reaches into the responder's collaborators to
time them one by one. The figures are warm-cache lower bounds; in the server the same work costs
more (compare ``benchmarks/run.py``'s "us per hit above the floor").
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from perf.targets import AUTH, LIST_PATH, in_process_app, simulator_alone
from perf.timing import CALLS, best_microseconds

from gateway.fastpath.protocol import HIT_RESPONDER


async def pieces(simulator_url: str, workdir: Path) -> dict[str, float]:
    """Each piece of a hit on the benchmark key, in µs."""
    with (workdir / "access.log").open("wb") as log:
        app = in_process_app(simulator_url, workdir, log)
        async with TestClient(TestServer(app)) as client:
            for _ in range(2):  # the miss that fills the key, then a hit
                await (await client.get(LIST_PATH, headers=AUTH)).read()
            responder: Any = app[HIT_RESPONDER]
            head = f"GET {LIST_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH['Authorization']}\r\n\r\n"
            raw = head.encode()
            reader = responder.head_reader()
            if responder.answer(raw, reader) is None:
                raise RuntimeError("the benchmark request is not answered as a plain hit")
            request = reader.read(raw)
            tenant = responder._admission.caller(request.header(b"authorization"))
            now = responder._clock.now()
            route, query, plain_hit = responder._wanted(LIST_PATH, "")
            entry = plain_hit(tenant, query, now)
            status, response_head, _ = responder._hit_head(entry, now, request)
            request_id = responder._tail.request_id(None)
            stats, access_log = responder._tail._stats, responder._tail._access_log

            traced = responder.head_reader()  # another connection's, one that sends a new id each time

            def per_new_head(call: Callable[[bytes], object]) -> float:
                """``best_microseconds`` of ``call`` on the benchmark head with a new X-Request-Id each time."""
                heads = iter([raw[:-2] + b"X-Request-Id: wrk-%012d\r\n\r\n" % n for n in range(CALLS * 3)])
                return best_microseconds(lambda: call(next(heads)))

            return {
                "reading the head (read before)": best_microseconds(lambda: reader.read(raw)),
                "  a new X-Request-Id each (from the connection's last shape)": per_new_head(traced.read),
                "  a new X-Request-Id each (from the skeleton: a connection's first)": per_new_head(
                    responder._heads.read_new
                ),
                "  parsing it (a head not seen before)": best_microseconds(lambda: responder._heads._parse(raw)),
                "caller": best_microseconds(lambda: responder._admission.caller(request.authorization)),
                "clock": best_microseconds(responder._clock.now),
                "query, cache look-up, freshness": best_microseconds(
                    lambda: (responder._wanted(LIST_PATH, ""), plain_hit(tenant, query, now))
                ),
                "rate limit": best_microseconds(lambda: responder._admission.retry_after(tenant)),
                "counting the cache result": best_microseconds(lambda: responder._service.count_hit(entry, now)),
                "response head (memo)": best_microseconds(lambda: responder._hit_head(entry, now, request)),
                "request id": best_microseconds(lambda: responder._tail.request_id(None)),
                "request counters (noted, folded in batches)": best_microseconds(
                    lambda: (stats.request(route, "GET", "200", tenant.id, 1e-4), stats.settle())
                ),
                "access-log line (noted, written in batches)": best_microseconds(
                    lambda: (
                        access_log.request(request_id, tenant.id, "GET", route, status, "hit", 1e-4),
                        access_log.settle(),
                    )
                ),
                "in all (HitResponder.answer, then settle)": best_microseconds(
                    lambda: (responder.answer(raw, reader), responder.settle())
                ),
                "in all, a new X-Request-Id each (no head read before)": per_new_head(
                    lambda head: (responder.answer(head, traced), responder.settle())
                ),
                "  of which the head join": best_microseconds(lambda: b"%s%s" % (response_head, request_id.encode())),
            }


def main() -> None:
    """Run the simulator, time the pieces, print them."""
    with tempfile.TemporaryDirectory(prefix="hit-pieces-") as scratch, simulator_alone(Path(scratch)) as simulator_url:
        figures = asyncio.run(pieces(simulator_url, Path(scratch)))
    width = max(map(len, figures))
    for name, microseconds in figures.items():
        print(f"{name:<{width}}  {microseconds:6.2f} us")


if __name__ == "__main__":
    main()
