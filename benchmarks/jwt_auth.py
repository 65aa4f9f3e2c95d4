"""JWT authentication's cost: cache-hit throughput with a JWT vs an API key, and a first verification.

    .venv/bin/python benchmarks/jwt_auth.py             # 6 rounds of three 5 s wrk runs
    .venv/bin/python benchmarks/jwt_auth.py --seconds 2 --rounds 1

One process serves the simulator, the fake IdP and the gateway (fast hit path on, on the loop
``serve`` runs) on loopback, pinned to core 0; Debian's ``wrk`` (pinned to core 1) asks for the
same cached list with an API key, with the API key and a padding header that makes the head as
long as the JWT's, and with a JWT whose verification is cached. The three run in rounds, back to
back, the order rotated from one round to the next; for each run it prints req/s and the server
CPU per hit (this process's CPU over the hits answered: wrk's is its own), then the medians over
rounds of the ratios and differences: what a JWT adds, how much of it the bigger head alone
adds, and what is left. Then the Python cost of one hit with each,
timed in a loop, and ``Admission.caller`` on tokens never seen before (RS256 and ES256): the
cost of verifying a token the first time, in microseconds. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import os
import re
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web
from perf.timing import best_microseconds

from gateway.admission.api_keys import hash_key
from gateway.app import create_app
from gateway.cli import new_event_loop
from gateway.clock import SystemClock
from gateway.config.settings import OidcIssuer, OidcSettings, ServerSettings, Settings, UpstreamSettings
from gateway.credentials.static import CredentialSource
from gateway.fastpath.protocol import HIT_RESPONDER, GatewayRunner
from gateway.simulator import running_simulator
from gateway.simulator.idp import running_idp
from gateway.tenant import Tenant
from gateway.web.appkeys import ADMISSION

API_KEY = "benchmark-api-key-0001"
API_KEY_NAME, PADDED, JWT = "API key", "API key + padding", "JWT"
"""The variants: an API key; the same with a header that makes the head as long as the JWT's;
a JWT (verified once, then remembered)."""
TARGET = "/v1/training-jobs?limit=20"


@dataclasses.dataclass(frozen=True)
class Run:
    """One wrk run: requests per second, and this process's CPU µs per request answered."""

    rps: float
    cpu_us_per_hit: float


def cpu_seconds() -> float:
    """This process's user + system CPU so far (the servers'; wrk is a child, counted apart)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def wrk(url: str, header_lines: list[str], seconds: float) -> Run:
    """One wrk run (one thread, 50 connections, core 1) against ``url``, sending ``header_lines``."""
    headers = [argument for line in header_lines for argument in ("-H", line)]
    process = await asyncio.create_subprocess_exec(
        "taskset", "-c", "1", "wrk", "-t1", "-c50", f"-d{seconds:g}s", *headers, url, stdout=asyncio.subprocess.PIPE
    )
    cpu_before = cpu_seconds()
    output, _ = await process.communicate()
    cpu = cpu_seconds() - cpu_before
    match = re.search(rb"Requests/sec:\s+([0-9.]+)", output)
    requests = re.search(rb"(\d+) requests in", output)
    if match is None or requests is None or b"Non-2xx" in output:
        raise RuntimeError(output.decode())
    return Run(float(match.group(1)), cpu * 1e6 / int(requests.group(1)))


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
    reader = responder.head_reader()  # one connection's
    if responder.answer(head, reader) is None:
        raise RuntimeError("not answered as a plain hit")

    def hit() -> None:  # as the connection answers one: then the batch work of its log line and counters
        responder.answer(head, reader)
        responder.settle()

    return best_microseconds(hit, ANSWER_CALLS)


Rounds = list[dict[str, Run]]


async def rounds(url: str, variants: dict[str, list[str]], seconds: float, count: int) -> Rounds:
    """``count`` rounds of one run per variant, the order rotated from one round to the next."""
    names = list(variants)
    done = []
    for number in range(count):
        shift = number % len(names)
        done.append({name: await wrk(url, variants[name], seconds) for name in names[shift:] + names[:shift]})
    return done


def compare(done: Rounds, name: str, baseline: str) -> str:
    """``name`` against ``baseline``: the medians over rounds of its req/s ratio and CPU per hit added."""
    ratio = statistics.median(one[name].rps / one[baseline].rps for one in done)
    added = statistics.median(one[name].cpu_us_per_hit - one[baseline].cpu_us_per_hit for one in done)
    return f"  {name} vs {baseline}: req/s {ratio:.3f}x, server CPU per hit {added:+.2f} us (medians of rounds)"


def report(done: Rounds, seconds: float) -> None:
    """Each round's figures, then the comparisons."""
    print(f"cache hits, wrk -t1 -c50, {len(done)} rounds of {seconds:g} s runs (order rotated each round):")
    for number, one in enumerate(done, start=1):
        figures = ", ".join(f"{name} {run.rps:,.0f} req/s {run.cpu_us_per_hit:.2f} us" for name, run in one.items())
        print(f"  round {number}: {figures}")
    print(compare(done, JWT, API_KEY_NAME))
    print(compare(done, PADDED, API_KEY_NAME) + "  <- the bigger head alone")
    print(compare(done, JWT, PADDED) + "  <- verifying nothing new: the cached token")
    api_cpu = statistics.median(one[API_KEY_NAME].cpu_us_per_hit for one in done)
    print(f"  (an API-key hit: {api_cpu:.2f} us of server CPU)")


async def main(seconds: float, count: int) -> None:
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
        headers = {API_KEY_NAME: f"Bearer {API_KEY}", JWT: f"Bearer {token}"}
        variants = {name: [f"Authorization: {value}"] for name, value in headers.items()}
        padding = len(variants[JWT][0]) - len(variants[API_KEY_NAME][0]) - len("X-Padding: \r\n")
        variants[PADDED] = [*variants[API_KEY_NAME], "X-Padding: " + "p" * padding]
        for header_lines in variants.values():  # fills the cache, then the verified-token cache
            await wrk(url, header_lines, 1)
        loop_figures = {name: answer_micros(app, authorization) for name, authorization in headers.items()}
        report(await rounds(url, variants, seconds, count), seconds)
        print(f"one hit's Python (HitResponder.answer, then settle; best of 3 x {ANSWER_CALLS:,} calls):")
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
    parser.add_argument("--rounds", type=int, default=6)
    arguments = parser.parse_args()
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main(arguments.seconds, arguments.rounds))
