"""JWT authentication's cost: cache-hit throughput with a JWT vs an API key, and a first verification.

    .venv/bin/python benchmarks/jwt_auth.py             # 5 s per wrk run, 3 rounds
    .venv/bin/python benchmarks/jwt_auth.py --seconds 2 --rounds 1

One process serves the simulator, the fake IdP and the gateway (fast hit path on, served as
``serve`` serves it) on loopback, pinned to core 0; Debian's ``wrk`` (pinned to core 1) asks for
the same cached list with an API key and with a JWT whose verification is cached, alternating,
so both figures come from the same run; then the Python cost of one hit with each, timed in a loop
(steadier than wrk on a noisy machine). Then it times ``Admission.caller`` on tokens never seen
before (RS256 and ES256): the cost of verifying a token the first time, in microseconds.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import re
import statistics
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web

from gateway.admission.api_keys import hash_key
from gateway.app import create_app
from gateway.clock import SystemClock
from gateway.config.settings import OidcIssuer, OidcSettings, ServerSettings, Settings, UpstreamSettings
from gateway.credentials.static import CredentialSource
from gateway.fastpath.protocol import HIT_RESPONDER, GatewayRunner
from gateway.simulator import running_simulator
from gateway.simulator.idp import running_idp
from gateway.tenant import Tenant
from gateway.web.appkeys import ADMISSION

API_KEY = "benchmark-api-key-0001"
TARGET = "/v1/training-jobs?limit=20"


async def wrk(url: str, authorization: str, seconds: float) -> float:
    """Requests per second wrk (one thread, 50 connections, core 1) gets from ``url``."""
    process = await asyncio.create_subprocess_exec(
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        "-c50",
        f"-d{seconds:g}s",
        "-H",
        f"Authorization: {authorization}",
        url,
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await process.communicate()
    match = re.search(rb"Requests/sec:\s+([0-9.]+)", output)
    if match is None or b"Non-2xx" in output:
        raise RuntimeError(output.decode())
    return float(match.group(1))


def first_verification_micros(app: web.Application, tokens: list[str]) -> float:
    """Median microseconds of ``Admission.caller`` on tokens it has never seen (each verified once)."""
    admission = app[ADMISSION]
    timings = []
    for token in tokens:
        header = f"Bearer {token}"
        started = time.perf_counter()
        tenant = admission.caller(header)
        timings.append((time.perf_counter() - started) * 1e6)
        assert tenant is not None
    return statistics.median(timings)


ANSWER_CALLS = 100_000


def answer_micros(app: web.Application, authorization: str) -> float:
    """Microseconds ``HitResponder.answer`` takes on a cache hit with this ``Authorization``, in a
    loop (the wrk figures move with the machine; this one barely does)."""
    responder = app[HIT_RESPONDER]
    head = f"GET {TARGET} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\n\r\n".encode()
    if responder.answer(head) is None:
        raise RuntimeError("not answered as a plain hit")
    return min(timeit.repeat(lambda: responder.answer(head), number=ANSWER_CALLS, repeat=3)) / ANSWER_CALLS * 1e6


async def main(seconds: float, rounds: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {0})
    async with running_simulator() as simulator, running_idp(users={"alice": "acme"}) as idp:
        tenant = Tenant("acme", "acme-web", (hash_key(API_KEY),), oidc=(("corp", ("acme",)),))
        settings = Settings(
            upstream=UpstreamSettings(endpoint=simulator.base_url, project_id=simulator.project_id),
            tenants=(tenant,),
            server=ServerSettings(fast_hit_path=True),
            oidc=OidcSettings(
                issuers=(
                    OidcIssuer(
                        name="corp", issuer=idp.issuer, jwks_uri=idp.jwks_uri, audiences=("metastudio-gateway",)
                    ),
                )
            ),
        )
        credentials = CredentialSource(
            {"HUAWEICLOUD_SDK_AK": "sim-ak", "HUAWEICLOUD_SDK_SK": "sim-sk"}, clock=SystemClock()
        )
        app = create_app(settings, credentials=credentials, log_stream=io.BytesIO())
        runner = GatewayRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}{TARGET}"
        token = idp.control.issue("alice")
        headers = {"API key": f"Bearer {API_KEY}", "JWT": f"Bearer {token}"}
        for authorization in headers.values():  # fills the cache, then the verified-token cache
            await wrk(url, authorization, 1)
        loop_figures = {name: answer_micros(app, authorization) for name, authorization in headers.items()}
        figures: dict[str, list[float]] = {name: [] for name in headers}
        for _ in range(rounds):
            for name, authorization in headers.items():
                figures[name].append(await wrk(url, authorization, seconds))
        api, jwt_hits = statistics.median(figures["API key"]), statistics.median(figures["JWT"])
        print(f"cache hits, wrk -t1 -c50, {seconds:g} s x {rounds} rounds, median req/s:")
        print(f"  API key  {api:10.0f}   {figures['API key']}")
        print(f"  JWT      {jwt_hits:10.0f}   {figures['JWT']}")
        print(f"  JWT / API key = {jwt_hits / api:.3f}")
        print(f"one hit's Python (HitResponder.answer, best of 3 x {ANSWER_CALLS:,} calls, same process):")
        for name, micros in loop_figures.items():
            print(f"  {name:8s} {micros:6.2f} µs")
        print(f"  JWT - API key = {loop_figures['JWT'] - loop_figures['API key']:+.2f} µs")
        for algorithm in ("RS256", "ES256"):
            fresh = [idp.control.issue("alice", algorithm=algorithm, claims={"jti": str(n)}) for n in range(2000)]
            print(f"first verification ({algorithm}): {first_verification_micros(app, fresh):.1f} µs median")
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.seconds, arguments.rounds))
