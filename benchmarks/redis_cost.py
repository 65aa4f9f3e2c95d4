"""What configuring Redis (``redis_url``) costs a cache hit: one replica with it, one without.

    .venv/bin/python benchmarks/redis_cost.py               # 5 pairs of 5 s wrk rounds
    .venv/bin/python benchmarks/redis_cost.py --pairs 3 --seconds 3

Starts a Redis server and two single-replica deployments (simulator and gateway, served as
``serve`` serves it, rate limit on far above the load as in the replicas section), pinned to core
0; wrk (core 1) asks both for the same cached list, alternating (the replicas section's
``hit_throughput``, with more rounds). For each pair of rounds it prints both req/s, both p99s
and the server CPU per hit Redis adds (the gateway process's CPU share over req/s, with Redis
minus without): a pair runs back to back, so the difference is steadier than req/s medians,
which the machine's noise moves by more than the cost measured. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

from perf.measures import Bench
from perf.replicas import REDIS_PASSWORD, deployment, hit_throughput
from perf.system import Cpus
from run import FULL, pin_self

from tests.stack import redis_server


def main() -> None:
    """Run the pairs, print each and the median CPU added."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    arguments = parser.parse_args()
    cpus = Cpus(server=0, client=1)
    pin_self(cpus)
    os.chdir(Path(__file__).resolve().parents[1])  # the servers run this checkout's gateway package
    with tempfile.TemporaryDirectory(prefix="redis-cost-") as scratch:
        work = Path(scratch)
        bench = Bench(plan=replace(FULL, hit_seconds=arguments.seconds), cpus=cpus, workdir=work)
        with (
            redis_server(work, REDIS_PASSWORD) as redis,
            deployment(work / "without", bench, 1, None) as (without,),
            deployment(work / "with", bench, 1, redis.url) as (with_redis,),
        ):
            figures = hit_throughput(bench, without, with_redis, rounds=arguments.pairs)
    without, with_redis = figures["without_redis"], figures["with_redis"]
    rounds = zip(without["rounds_rps"], with_redis["rounds_rps"], strict=True)
    tails = zip(without["rounds_p99_ms"], with_redis["rounds_p99_ms"], strict=True)
    added = figures["cpu_us_added_by_round"]
    for pair, ((without_rps, with_rps), (without_p99, with_p99), cpu) in enumerate(
        zip(rounds, tails, added, strict=True), start=1
    ):
        print(
            f"pair {pair}: {without_rps:,.0f} req/s without Redis, {with_rps:,.0f} with "
            f"({with_rps / without_rps:.3f}x); p99 {without_p99:.2f} ms without, {with_p99:.2f} with; "
            f"server CPU per hit {cpu:+.2f} us with Redis"
        )
    print(f"server CPU per hit added by redis_url, median of {len(added)} pairs: {statistics.median(added):+.2f} us")
    print(f"req/s with Redis over without, median of {len(added)} pairs: {figures['ratio_by_pair']:.3f}x")
    print(  # median_run's p99s: the medians of the rounds'
        f"p99 ms, median of {len(added)} rounds: {without['p99_ms']:.2f} without Redis, {with_redis['p99_ms']:.2f} with"
    )


if __name__ == "__main__":
    main()
