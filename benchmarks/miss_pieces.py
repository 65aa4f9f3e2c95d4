"""Where one cache miss's CPU goes: the gateway's process CPU per miss, and each layer's share.

    .venv/bin/python benchmarks/miss_pieces.py              # about 15 seconds
    .venv/bin/python benchmarks/miss_pieces.py --seconds 5

Starts the simulator (a real process) and serves the gateway app in this process (the
benchmark's tenant and config, ``GatewayRunner`` on the loop ``serve`` runs), both pinned to
core 0; Debian's ``wrk`` (core 1, one connection) asks for a new page on every request (8 to 12
jobs, fewer at the end of the list), so every request is a miss (the script stops if one was
not). Prints this process's CPU per miss and the median CPU
of each layer of one, measured with ``time.process_time`` around calls wrapped on the running
service's instances (a diagnostic: it reaches into the service and its upstream client).
Nothing else runs in this process while a miss awaits the upstream, so a layer's CPU is its own
and that of what it awaits. Beside them, the same pieces of one 10-job page timed in a loop
(``timeit``, best of 3), warm: the difference is what running once every few milliseconds, cold,
costs each. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from perf.targets import AUTH, LIST_PATH, in_process_app, simulator_alone
from perf.timing import best_microseconds

from gateway.cli import new_event_loop
from gateway.fastpath.protocol import GatewayRunner
from gateway.jobs.query import parse_list_query
from gateway.web.appkeys import ADMISSION, SERVICE

NEW_PAGE_EACH = """local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", string.format("{path}?offset=%d&limit=%d", math.floor(n / 5) % 1000, {limit} + n % 5))
end
"""
"""wrk Lua: a new list page per request, 5,000 of them (limits ``{limit}`` to 4 more in turn,
offsets 0-999)."""
MEASURED_LIMIT, WARM_UP_LIMIT = 8, 20
"""Pages of 8-12 jobs (10 on average) are measured; the warm-up asks for others."""

LOOP_CALLS = 200
"""Calls per ``timeit`` repeat of a piece timed in a loop."""

Spent = dict[str, list[float]]


def cpu_timed(spent: Spent, label: str, call: Callable[..., Any]) -> Callable[..., Any]:
    """``call`` (sync or async) noting in ``spent[label]`` the process CPU seconds each call took."""
    if inspect.iscoroutinefunction(call):

        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return await call(*args, **kwargs)
            finally:
                spent.setdefault(label, []).append(time.process_time() - started)

        return timed_async

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return call(*args, **kwargs)
        finally:
            spent.setdefault(label, []).append(time.process_time() - started)

    return timed


def wrap_layers(app: web.Application, spent: Spent) -> None:
    """Time the service's layers: the whole of it, the upstream call, the aiohttp request in it,
    shaping, and building the entry."""
    service: Any = app[SERVICE]
    client = service._client
    service.list_jobs = cpu_timed(spent, "service", service.list_jobs)
    client.list_jobs = cpu_timed(spent, "upstream call", client.list_jobs)
    client._attempt = cpu_timed(spent, "attempt", client._attempt)
    service._shape = cpu_timed(spent, "shaping", service._shape)
    service._entry = cpu_timed(spent, "entry", service._entry)


async def in_a_loop(app: web.Application) -> dict[str, float]:
    """Microseconds of the pieces of one 10-job miss called in a loop, warm: signing the
    upstream request, orjson on its answer, shaping, encoding the page, the entry."""
    service: Any = app[SERVICE]
    client = service._client
    tenant = app[ADMISSION].caller(AUTH["Authorization"])
    assert tenant is not None
    query = parse_list_query([("offset", "0"), ("limit", "10")])
    auth = client._credentials.authorization()
    target, headers = client._authenticated_request(auth, tenant.app_user_id, query)
    answer = await client._connections.get(target, headers)
    raw, fetched_at = orjson.loads(answer.body), time.time()
    page = service._shape(tenant, raw, fetched_at)
    body = service._page_body(query, page.count, page.jobs)

    return {
        "signing": best_microseconds(
            lambda: client._authenticated_request(auth, tenant.app_user_id, query), LOOP_CALLS
        ),
        "orjson": best_microseconds(lambda: orjson.loads(answer.body), LOOP_CALLS),
        "shaping": best_microseconds(lambda: service._shape(tenant, raw, fetched_at), LOOP_CALLS),
        "encoding": best_microseconds(lambda: service._page_body(query, page.count, page.jobs), LOOP_CALLS),
        "entry": best_microseconds(lambda: service._entry(tenant, body, fetched_at, page.covers), LOOP_CALLS),
    }


def run_wrk(workdir: Path, url: str, seconds: int, limit: int) -> int:
    """wrk -t1 -c1 on core 1, a new page each request; the number of requests answered."""
    script = workdir / f"new-page-each-{limit}.lua"
    headers = f'wrk.headers["Authorization"] = "{AUTH["Authorization"]}"\n'
    script.write_text(headers + NEW_PAGE_EACH.replace("{path}", LIST_PATH).replace("{limit}", str(limit)))
    command = ["taskset", "-c", "1", "wrk", "-t1", "-c1", f"-d{seconds}s", "-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    requests = re.search(r"(\d+) requests in", output)
    if requests is None or "Non-2xx" in output:
        raise RuntimeError(output)
    return int(requests.group(1))


async def measure(simulator_url: str, workdir: Path, seconds: int) -> tuple[float, Spent, dict[str, float]]:
    """Serve the gateway here, drive misses with wrk; CPU seconds per miss, each layer's, and
    the pieces timed in a loop (``in_a_loop``)."""
    with (workdir / "access.log").open("wb") as log:
        app = in_process_app(simulator_url, workdir, log)
        runner = GatewayRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            await asyncio.to_thread(run_wrk, workdir, url, 1, WARM_UP_LIMIT)  # connections, code paths
            warm = await in_a_loop(app)
            spent: Spent = {}
            wrap_layers(app, spent)
            started = time.process_time()
            answered = await asyncio.to_thread(run_wrk, workdir, url, seconds, MEASURED_LIMIT)
            loads = len(spent.get("service", ()))
            if abs(answered - loads) > 2:  # one may be in flight at either end; more: pages asked twice
                raise SystemExit(f"{answered} requests but {loads} loads: ask for fewer --seconds")
            return (time.process_time() - started) / answered, spent, warm
        finally:
            await runner.cleanup()


def report(per_miss: float, spent: Spent, warm: dict[str, float]) -> None:
    """The figures, in µs of this process's CPU (medians over the misses), and beside them the
    pieces timed in a loop."""
    median = {label: statistics.median(seconds) * 1e6 for label, seconds in spent.items()}
    call, attempt = median["upstream call"], median["attempt"]
    below = call + median["shaping"] + median["entry"]
    rows: list[tuple[str, float | None, str]] = [
        ("one miss, all of it (mean process CPU per miss)", per_miss * 1e6, ""),
        ("  outside the service (the mean less the service's median): the", per_miss * 1e6 - median["service"], ""),
        ("    connection (head, caller, query, answer bytes), the loop, the log", None, ""),
        ("  the service (cache, single flight, store) and what it calls", median["service"], ""),
        ("    the upstream call", call, ""),
        (
            "      the attempt: signing, the HTTP exchange, orjson",
            attempt,
            f"signing {warm['signing']:.0f}, orjson {warm['orjson']:.0f} us",
        ),
        ("      around it: deadline, retries, budget, breaker", call - attempt, ""),
        (
            "    shaping the page (8-12 jobs: fields, cover links, image links)",
            median["shaping"],
            f"{warm['shaping']:.0f} us",
        ),
        ("    the entry (exact copy, ETag, gzip, cover index)", median["entry"], f"{warm['entry']:.0f} us"),
        (
            "    the rest: encoding the page, single flight, store, counting",
            median["service"] - below,
            f"encoding {warm['encoding']:.0f} us",
        ),
    ]
    width = max(len(label) for label, _, _ in rows)
    print(f"{'':<{width}}  {'live':>10}  in a loop (one 10-job page, warm)")
    for label, micros, looped in rows:
        print((f"{label:<{width}}" + ("" if micros is None else f"  {micros:7.0f} us  {looped}")).rstrip())


def main() -> None:
    """Run the simulator, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    arguments = parser.parse_args()
    os.sched_setaffinity(0, {0})
    with (
        tempfile.TemporaryDirectory(prefix="miss-pieces-") as scratch,
        simulator_alone(Path(scratch)) as simulator_url,
        asyncio.Runner(loop_factory=new_event_loop) as runner,
    ):
        per_miss, spent, warm = runner.run(measure(simulator_url, Path(scratch), arguments.seconds))
    report(per_miss, spent, warm)


if __name__ == "__main__":
    main()
