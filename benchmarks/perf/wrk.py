"""Driving wrk (Debian's, one thread, pinned to the client core) and reading its output."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from perf.system import Cpus, CpuSample, children_cpu_seconds, listen_overflows

_LATENCY_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class Target:
    """A server under load: a name for the table, the URL wrk hits, the PID whose CPU we count."""

    name: str
    url: str
    pid: int
    headers: Mapping[str, str] = field(default_factory=dict)
    new_request_ids: bool = False
    """Send a new ``X-Request-Id`` on every request (as a traced client would): no two heads alike."""


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured, plus the CPU shares seen while it ran."""

    target: str
    connections: int
    seconds: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx: int
    cpu: dict[str, float] = field(default_factory=dict)
    listen_overflows: int = 0


_NEW_REQUEST_IDS = """local sent = 0
request = function()
  sent = sent + 1
  wrk.headers["X-Request-Id"] = string.format("wrk-%012d", sent)
  return wrk.format()
end"""


def script(workdir: Path, headers: Mapping[str, str], new_request_ids: bool = False) -> Path:
    """A wrk Lua script that sets ``headers`` on every request, and a new ``X-Request-Id`` on
    each when ``new_request_ids`` (one file per header set)."""
    lines = [f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}" for name, value in sorted(headers.items())]
    if new_request_ids:
        lines.append(_NEW_REQUEST_IDS)
    path = workdir / f"wrk-{hashlib.sha256(repr(lines).encode()).hexdigest()[:12]}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def _latency_ms(output: str, percent: str) -> float:
    """A percentile of wrk's ``--latency`` distribution, in milliseconds."""
    match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    if match is None:
        raise ValueError(f"no {percent}% latency in wrk output:\n{output}")
    return float(match.group(1)) * _LATENCY_UNITS[match.group(2)]


def _count(output: str, pattern: str) -> int:
    """Sum of the integers a regex finds in wrk's output (0 when absent)."""
    return sum(int(value) for value in re.findall(pattern, output))


def parse(output: str, target: str, connections: int, seconds: int) -> WrkResult:
    """Requests/s, p50, p99 and error counts out of wrk's text output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    requests = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    if rps is None or requests is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    return WrkResult(
        target=target,
        connections=connections,
        seconds=seconds,
        requests=int(requests.group(1)),
        rps=float(rps.group(1)),
        p50_ms=_latency_ms(output, "50"),
        p99_ms=_latency_ms(output, "99"),
        socket_errors=_count(output, r"(?:connect|read|write|timeout) (\d+)"),
        non_2xx=_count(output, r"Non-2xx or 3xx responses: (\d+)"),
    )


def run(cpus: Cpus, workdir: Path, target: Target, *, connections: int, seconds: int) -> WrkResult:
    """One wrk run (``-t1 --latency``, pinned to the client core) against ``target``."""
    command = [
        *cpus.client_wrap(),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script(workdir, target.headers, target.new_request_ids)),
        target.url,
    ]
    before, wrk_before, overflows_before = CpuSample.take(target.pid, cpus), children_cpu_seconds(), listen_overflows()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)
    after, wrk_after = CpuSample.take(target.pid, cpus), children_cpu_seconds()
    shares = after.shares_since(before)
    shares["wrk_cpu"] = (wrk_after - wrk_before) / max(1e-9, after.wall - before.wall)
    result = parse(done.stdout, target.name, connections, seconds)
    return replace(result, cpu=shares, listen_overflows=listen_overflows() - overflows_before)


def measure(cpus: Cpus, workdir: Path, target: Target, *, connections: int, seconds: int, warmup: int) -> WrkResult:
    """A warm-up run at the same settings (unless ``warmup`` is 0), then the measured run; prints a line."""
    if warmup > 0:
        run(cpus, workdir, target, connections=connections, seconds=warmup)
    result = run(cpus, workdir, target, connections=connections, seconds=seconds)
    cpu = result.cpu
    print(
        f"  {target.name:<14} c={connections:<4} {result.rps:>9.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
        f"p99 {result.p99_ms:7.2f} ms  | server {cpu['server_process_cpu']:.2f} of its core "
        f"(core: tasks {cpu['server_core_tasks']:.2f}, irq {cpu['server_core_interrupts']:.2f}), "
        f"wrk {cpu['wrk_cpu']:.2f} of its core (core: tasks {cpu['client_core_tasks']:.2f})"
        + (f", {result.listen_overflows} listen-queue overflows" if result.listen_overflows else ""),
        flush=True,
    )
    return result
