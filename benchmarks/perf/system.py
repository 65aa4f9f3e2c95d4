"""The machine and the processes a benchmark runs: versions, /proc readings, blocking HTTP,
starting and stopping servers by PID."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import resource
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.stack import stop_process, wait_until_answering

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Cpus:
    """Which core the servers run on, and which one wrk and the harness's own client use."""

    server: int
    client: int

    def server_wrap(self) -> tuple[str, ...]:
        """The command prefix that pins a server to its core (taskset execs: the PID stays the server's)."""
        return ("taskset", "-c", str(self.server))

    def client_wrap(self) -> tuple[str, ...]:
        """The command prefix that pins the load generator to its core."""
        return ("taskset", "-c", str(self.client))


# ---------------------------------------------------------------- what the machine is


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def version_of(distribution: str) -> str | None:
    """An installed distribution's version, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def tool_version(command: Sequence[str]) -> str:
    """The first line a ``-v``-style command prints."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def machine_info(loop: str, background: Mapping[str, float]) -> dict[str, Any]:
    """The machine and software of this run; ``background`` is the per-core busy share before it."""
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "aiohttp": version_of("aiohttp"),
        "uvloop": version_of("uvloop"),
        "gateway_event_loop": loop,
        "wrk": tool_version(["wrk", "-v"]).split(" Copyright")[0],
        "nginx": tool_version(["nginx", "-v"]).removeprefix("nginx version: "),
        "background_busy_before_run": dict(background),
    }


# ---------------------------------------------------------------- /proc


def rss_bytes(pid: int) -> int:
    """A process's resident set size (VmRSS) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def loop_of(pid: int) -> str:
    """``uvloop`` if the process has uvloop's extension mapped, else ``asyncio``."""
    return "uvloop" if "uvloop" in Path(f"/proc/{pid}/maps").read_text() else "asyncio"


def process_tree(pid: int, depth: int = 4) -> list[int]:
    """``pid`` and its descendants (a few levels: nginx master, workers, cache manager)."""
    pids = [pid]
    if depth == 0:
        return pids
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                pids += process_tree(int(child), depth - 1)
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its live descendants."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / _CLOCK_TICKS


def listen_overflows() -> int:
    """Times since boot a listen queue was full when a connection completed its handshake.

    Such a connection's first request waits for the server's SYN-ACK retransmit (1 s or more).
    """
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(values.split()[names.split().index("ListenOverflows")])
    return 0


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished, waited-for children (wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def core_ticks(cpu: int) -> tuple[int, int, int, int, int]:
    """(busy, task, interrupts, steal, total) clock ticks of one core since boot, from /proc/stat.

    ``task`` is user + nice + system time, what processes are charged with; ``interrupts`` is irq
    + softirq (loopback traffic is mostly softirq), charged to no process.
    """
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in line.split()[1:9])
            total = user + nice + system + idle + iowait + irq + softirq + steal
            return total - idle - iowait, user + nice + system, irq + softirq, steal, total
    raise RuntimeError(f"no cpu{cpu} in /proc/stat")


@dataclass(frozen=True)
class CpuSample:
    """A point in time to measure CPU use from: wall clock, one process tree, two cores."""

    wall: float
    process: float
    server_core: tuple[int, int, int, int, int]
    client_core: tuple[int, int, int, int, int]

    @classmethod
    def take(cls, pid: int, cpus: Cpus) -> CpuSample:
        """Read the clock, the process tree's CPU time and both cores' counters now."""
        return cls(time.monotonic(), cpu_seconds(pid), core_ticks(cpus.server), core_ticks(cpus.client))

    def shares_since(self, start: CpuSample) -> dict[str, float]:
        """Shares of one core over the interval: the target process tree's, and the server core's
        busy, process (task), interrupt and steal time; the client core's busy time."""

        def server(index: int) -> float:
            now, then = self.server_core, start.server_core
            return (now[index] - then[index]) / max(1, now[4] - then[4])

        client_ticks = max(1, self.client_core[4] - start.client_core[4])
        client = (self.client_core[0] - start.client_core[0]) / client_ticks
        client_tasks = (self.client_core[1] - start.client_core[1]) / client_ticks
        return {
            "server_process_cpu": (self.process - start.process) / max(1e-9, self.wall - start.wall),
            "server_core_busy": server(0),
            "server_core_tasks": server(1),
            "server_core_interrupts": server(2),
            "server_core_steal": server(3),
            "client_core_busy": client,
            "client_core_tasks": client_tasks,
        }


def background_busy(cpus: Cpus, seconds: float = 1.0) -> dict[str, float]:
    """How busy each core is with other people's work before we start anything."""
    before = core_ticks(cpus.server), core_ticks(cpus.client)
    time.sleep(seconds)
    after = core_ticks(cpus.server), core_ticks(cpus.client)
    return {
        f"cpu{cpu}": (now[0] - then[0]) / max(1, now[4] - then[4])
        for cpu, now, then in zip((cpus.server, cpus.client), after, before, strict=True)
    }


def wait_until_quiet(cpus: Cpus, max_seconds: float, threshold: float = 0.10) -> dict[str, float]:
    """Sample both cores each second until neither is busier than ``threshold`` or time runs out.

    The machine may be shared: a run started under someone else's load measures that load.
    Returns the last sample (the report warns when it is over the threshold).
    """
    deadline = time.monotonic() + max_seconds
    sample = background_busy(cpus)
    while max(sample.values()) > threshold and time.monotonic() < deadline:
        print(f"waiting for a quiet machine: {', '.join(f'{k} {v:.0%}' for k, v in sample.items())} busy", flush=True)
        sample = background_busy(cpus)
    return sample


# ---------------------------------------------------------------- HTTP and processes


def http_get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One blocking GET, no automatic decompression: status, headers, raw body."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


@contextlib.contextmanager
def started(command: Sequence[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` (output to ``log``) for the block; yields once ``ready_url`` answers."""
    with log.open("wb") as sink:
        process = subprocess.Popen(list(command), stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_until_answering(ready_url, process)
            yield process
        finally:
            stop_process(process)
