"""What configuring Redis (``redis_url``) costs a cache hit: one replica with it, one without.

    .venv/bin/python benchmarks/redis_cost.py               # 5 pairs of 5 s wrk rounds
    .venv/bin/python benchmarks/redis_cost.py --pairs 3 --seconds 3

Starts a Redis server and two single-replica deployments (simulator and gateway, served as
``serve`` serves it, rate limit on far above the load as in the replicas section), pinned to core
0; wrk (core 1) asks both for the same cached list, alternating. For each pair of rounds it prints
both req/s and the server CPU per hit Redis adds (the gateway process's CPU share over req/s,
with Redis minus without): a pair runs back to back, so the difference is steadier than req/s
medians, which the machine's noise moves by more than the cost measured. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from dataclasses import asdict
from pathlib import Path

from perf import wrk
from perf.measures import Bench, cpu_us_per_hit
from perf.replicas import REDIS_PASSWORD, deployment
from perf.system import Cpus, http_get
from perf.targets import AUTH, LIST_PATH
from perf.wrk import Target
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
        bench = Bench(plan=FULL, cpus=cpus, workdir=work)
        with (
            redis_server(work, REDIS_PASSWORD) as redis,
            deployment(work / "without", bench, 1, None) as (without,),
            deployment(work / "with", bench, 1, redis.url) as (with_redis,),
        ):
            for gateway in (without, with_redis):
                http_get(gateway.base_url + LIST_PATH, AUTH)  # the miss that fills the key
            added = []
            for pair in range(1, arguments.pairs + 1):
                runs = [
                    asdict(
                        wrk.run(
                            cpus,
                            work,
                            Target(name, gateway.base_url + LIST_PATH, gateway.process.pid, AUTH),
                            connections=50,
                            seconds=arguments.seconds,
                        )
                    )
                    for name, gateway in (("without", without), ("with", with_redis))
                ]
                added.append(cpu_us_per_hit(runs[1]) - cpu_us_per_hit(runs[0]))
                print(
                    f"pair {pair}: {runs[0]['rps']:,.0f} req/s without Redis, {runs[1]['rps']:,.0f} with "
                    f"({runs[1]['rps'] / runs[0]['rps']:.3f}x); server CPU per hit {added[-1]:+.2f} us with Redis",
                    flush=True,
                )
            median = statistics.median(added)
            print(f"server CPU per hit added by redis_url, median of {len(added)} pairs: {median:+.2f} us")


if __name__ == "__main__":
    main()
