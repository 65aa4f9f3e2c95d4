"""The performance harness: the gateway against the physical limit and a peer, in one run.

    python benchmarks/run.py            # full run, about 11 minutes
    python benchmarks/run.py --quick    # shorter durations, about 2.5 minutes

Starts the simulator and the gateway (``metastudio-gateway serve``, real processes on loopback),
a bare aiohttp app serving the gateway's exact bytes on the gateway's event loop, and Debian
nginx with ``proxy_cache`` in front of the simulator, all pinned to one core; drives them with
wrk pinned to the other. Prints one table and writes ``benchmarks/results/latest.json`` and
``benchmarks/results/concurrency.png``. Every comparison is a ratio measured in this run:

1. hit path: gateway cache hits vs the bare app (req/s, p50, p99; gzip too if the gateway serves it),
   and a second gateway with ``fast_hit_path = false`` (hits through aiohttp's handler chain)
2. vs nginx proxy_cache answering the same query (also round by round: the two run one after the
   other), and each one's µs per hit above the floor: a bare uvloop protocol answering the same
   bytes (``floor_app.py``: the loop, the syscalls, loopback)
3. miss path: the gateway's added latency over signing and calling the simulator directly
4. coalescing: 1000 concurrent cold requests for one key: upstream calls, time to serve all
   (vs the bare app serving the same page, gzip as the client accepts it)
5. memory: RSS with the cache filled to max_bytes with 100-job pages, over the start-up RSS
6. signing: microseconds per signature, ours vs the official SDK's Signer
7. concurrency curve: req/s and p99 at 1, 8, 64, 256 connections, gateway and bare app
8. replicas: 3 gateways with and without a shared Redis (``perf/replicas.py``): upstream calls
   per key, hit throughput with ``redis_url`` set against not, L2-hit latency, Redis commands
   per 1,000 hits, rate-limit accuracy. ``--section replicas`` runs only this (about 1.5
   minutes), prints its table and writes ``results/replicas.json``.

Needs Debian's ``wrk``, ``nginx``, ``taskset`` and ``redis-server`` (``apt-get install -y wrk nginx``) and the
``bench`` extra (matplotlib, huaweicloudsdkcore). Pieces: ``benchmarks/perf/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from perf import measures, replicas, report, targets
from perf.measures import Bench, Plan
from perf.system import Cpus, loop_of, machine_info, wait_until_quiet

BENCH_DIR = Path(__file__).resolve().parent
MiB = 1024 * 1024

FULL = Plan(
    warmup_seconds=2,
    hit_seconds=10,
    curve_seconds=5,
    miss_requests=300,
    coalesce_requests=1000,
    memory_max_bytes=64 * MiB,
    signing_iterations=20_000,
    hit_rounds=5,
)
QUICK = Plan(
    warmup_seconds=1,
    hit_seconds=3,
    curve_seconds=2,
    miss_requests=100,
    coalesce_requests=1000,
    memory_max_bytes=64 * MiB,
    signing_iterations=3_000,
    hit_rounds=1,
)


def check_tools() -> None:
    """Stop early, naming the install command, when wrk, taskset or nginx is missing."""
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        missing.append("nginx")
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)} (Debian: apt-get install -y wrk nginx util-linux)")


def pin_self(cpus: Cpus) -> None:
    """Run this script (the aiohttp client of measurements 3-5) on the client core."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {cpus.client})


def wrk_measurements(bench: Bench, results: dict[str, Any]) -> None:
    """Measurements 1-4 and 7, against one simulator + gateway, the bare app and nginx."""
    with contextlib.ExitStack() as stack:
        print("starting simulator + gateway (twice: fast_hit_path on, off), bare aiohttp, nginx", flush=True)
        live = stack.enter_context(targets.gateway_stack(bench.workdir / "main", bench.cpus, max_bytes=1 << 30))
        chain_live = stack.enter_context(
            targets.gateway_stack(bench.workdir / "chain", bench.cpus, max_bytes=1 << 30, fast_hit_path=False)
        )
        loop = loop_of(live.process.pid)
        payload = targets.capture_payload(live, bench.workdir)
        targets.warm_hit(chain_live)
        bare, bare_gzip = stack.enter_context(targets.bare_app(bench.workdir, bench.cpus, payload, loop))
        nginx, nginx_bytes = stack.enter_context(targets.nginx(bench.workdir, bench.cpus, live.simulator_url))
        floor = stack.enter_context(targets.floor_app(bench.workdir, bench.cpus, payload, loop))
        results["machine"] = machine_info(loop, results.pop("background"))
        results["payload"] = {**payload.describe(), "nginx_bytes": nginx_bytes}
        gateway = targets.gateway_target(live)
        gateway_gzip = targets.gateway_target(live, gzip_accepted=True) if bare_gzip else None
        chain = targets.gateway_target(chain_live, name="gateway, fast_hit_path off")
        hit = measures.HitTargets(gateway, chain, bare, nginx, floor, gateway_gzip, bare_gzip)
        print(f"1, 2. hit path vs bare aiohttp and nginx ({bench.plan.hit_rounds} round(s), median kept)", flush=True)
        results.update(measures.hit_measurements(bench, hit, live.base_url))
        print("7. concurrency curve", flush=True)
        results["concurrency"] = measures.concurrency_curve(bench, gateway, bare)
        print("3. miss path", flush=True)
        results["miss"] = measures.miss_path(live, bench.plan.miss_requests)
        print("4. coalescing", flush=True)
        results["coalescing"] = measures.coalescing(bench, live, loop)


def run_all(bench: Bench, wait_quiet_seconds: float) -> dict[str, Any]:
    """Every measurement (once the machine is quiet, within a bound); the memory test gets a gateway of its own."""
    results: dict[str, Any] = {"background": wait_until_quiet(bench.cpus, wait_quiet_seconds)}
    wrk_measurements(bench, results)
    print("5. memory", flush=True)
    results["memory"] = measures.memory(bench)
    print("6. signing", flush=True)
    results["signing"] = measures.signing(bench.workdir, bench.plan.signing_iterations)
    print("8. replicas", flush=True)
    results["replicas"] = replicas.replicas(bench)
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description="Gateway benchmarks: one table, JSON and a chart.")
    parser.add_argument("--quick", action="store_true", help="shorter durations (about 2.5 minutes)")
    parser.add_argument("--server-cpu", type=int, default=0, help="core for the servers (default 0)")
    parser.add_argument("--client-cpu", type=int, default=1, help="core for wrk and this script (default 1)")
    parser.add_argument(
        "--wait-quiet", type=float, default=60, metavar="SECONDS", help="wait up to this long for idle cores (60)"
    )
    parser.add_argument(
        "--section", choices=("all", "replicas"), default="all", help="run every measurement (all) or one section"
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="where latest.json and the PNG go")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every measurement, write the results, print the table."""
    args = parse_args(argv)
    check_tools()
    cpus = Cpus(server=args.server_cpu, client=args.client_cpu)
    plan = QUICK if args.quick else FULL
    pin_self(cpus)
    os.chdir(BENCH_DIR.parent)  # the servers run this checkout's gateway package
    started_at = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as scratch:
        bench = Bench(plan=plan, cpus=cpus, workdir=Path(scratch))
        if args.section == "replicas":
            wait_until_quiet(cpus, args.wait_quiet)
            section = replicas.replicas(bench)
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "replicas.json").write_text(json.dumps(section, indent=2) + "\n")
            print("\n" + replicas.table(section) + f"\n\nwrote {args.out / 'replicas.json'}")
            return 0
        results = run_all(bench, args.wait_quiet)
    results["run"] = {
        "command": "python benchmarks/run.py" + (" --quick" if args.quick else ""),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started_at, 1),
        "plan": asdict(plan),
        "cpus": asdict(cpus),
    }
    print("\n" + report.write(results, args.out))
    print(f"\nwrote {args.out / 'latest.json'} and {args.out / 'concurrency.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
