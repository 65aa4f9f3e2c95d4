"""A real deployment on loopback, for live tests, the chaos script and benchmarks:
``metastudio-gateway simulator`` and ``metastudio-gateway serve`` as subprocesses, configured as
an operator would (TOML file + environment), stopped by PID afterwards."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.admission.api_keys import hash_key

LIVE_AK = "live-test-ak"
LIVE_SK = "live-test-sk-never-logged"
ACME_KEY = "live-acme-key-1"
GLOBEX_KEY = "live-globex-key-2"
GATEWAY_ENV_PREFIXES = ("HUAWEICLOUD_", "CLOUD_SDK_", "HC_", "METASTUDIO_", "GATEWAY_")
"""The prefixes of the environment variables the gateway reads: its settings and every source of
the credential chain (static keys, OIDC, federation, profile, IAM, metadata, CCE pod identity).
It reads the proxy variables too (``HTTPS_PROXY``... in either case: ``PROXY_VARIABLES``)."""
PROXY_VARIABLES = frozenset({"https_proxy", "http_proxy", "all_proxy", "no_proxy"})
DEFAULT_TENANTS: tuple[tuple[str, str, str], ...] = (
    ("acme", "acme-web", ACME_KEY),
    ("globex", "globex-app", GLOBEX_KEY),
)
"""(tenant id, app user id, API key) of the tenants a live stack configures unless told otherwise."""


@dataclass(frozen=True)
class LiveGateway:
    """Where the live gateway and its simulator listen, and the API keys that work."""

    base_url: str
    simulator_url: str
    process: subprocess.Popen[bytes]
    acme_key: str = ACME_KEY
    globex_key: str = GLOBEX_KEY


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any variable the gateway reads, plus ``extra``: a
    command sees only the settings and credentials its test gives it."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(GATEWAY_ENV_PREFIXES)}
    return {**{k: v for k, v in kept.items() if k.lower() not in PROXY_VARIABLES}, **extra}


def simulator_command(port: int, *args: str, wrap: Sequence[str] = ()) -> list[str]:
    """``metastudio-gateway simulator`` on loopback ``port``, accepting the live keys, with ``args``
    (``--jobs-per-user N``); ``wrap`` prefixes it (see ``live_stack``)."""
    simulator = [sys.executable, "-m", "gateway", "simulator", "--port", str(port), "--ak", LIVE_AK, "--sk", LIVE_SK]
    return [*wrap, *simulator, *args]


def serve_command(config: Path, port: int, wrap: Sequence[str] = ()) -> list[str]:
    """``metastudio-gateway serve`` with the TOML file ``config`` on loopback ``port``; ``wrap`` prefixes it."""
    return [
        *wrap,
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def upstream_calls(simulator_url: str) -> int:
    """Jobs requests the simulator has received so far (``/_simulator/stats``)."""
    with urllib.request.urlopen(simulator_url + "/_simulator/stats", timeout=5) as response:
        return int(json.loads(response.read())["requests"])


def set_faults(simulator_url: str, faults: list[dict[str, object]]) -> None:
    """Replace the simulator's faults (``[]`` clears them)."""
    request = urllib.request.Request(
        simulator_url + "/_simulator/faults", data=json.dumps(faults).encode(), method="PUT"
    )
    urllib.request.urlopen(request, timeout=5).close()


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answering(url: str, process: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    """Poll ``url`` until it answers (below 500); fail if the process exits or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:  # it answers: up (the simulator has no page at /)
                return
            time.sleep(0.1)
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process we started, and kill it if it does not exit within 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _tenants_toml(tenants: Sequence[tuple[str, str, str]]) -> str:
    """``[[tenants]]`` tables for (tenant id, app user id, API key) triples."""
    return "".join(
        f'\n[[tenants]]\nid = "{tenant_id}"\napp_user_id = "{app_user_id}"\napi_key_sha256 = ["{hash_key(key)}"]\n'
        for tenant_id, app_user_id, key in tenants
    )


@contextmanager
def live_stack(
    workdir: Path,
    *,
    extra_config: str = "",
    wrap: Sequence[str] = (),
    simulator_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
    tenants: Sequence[tuple[str, str, str]] = DEFAULT_TENANTS,
) -> Iterator[LiveGateway]:
    """Start simulator + gateway, wait until ready (bounded), yield, stop both.

    ``wrap`` prefixes both commands (``("taskset", "-c", "0")`` pins them to a core; the wrapper
    must exec the command, so the PIDs stay the servers' own). ``simulator_args`` go to the
    ``simulator`` command (``--jobs-per-user``), ``extra_env`` to the gateway's environment,
    ``tenants`` replaces the two default tenants (acme, globex).
    """
    with live_replicas(
        workdir,
        1,
        extra_config=extra_config,
        wrap=wrap,
        simulator_args=simulator_args,
        extra_env=extra_env,
        tenants=tenants,
    ) as (gateway,):
        yield gateway


@contextmanager
def live_replicas(
    workdir: Path,
    count: int,
    *,
    extra_config: str = "",
    wrap: Sequence[str] = (),
    simulator_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
    tenants: Sequence[tuple[str, str, str]] = DEFAULT_TENANTS,
) -> Iterator[tuple[LiveGateway, ...]]:
    """Start one simulator and ``count`` gateways in front of it (one config file, one
    environment: replicas of one deployment), wait until all are ready, yield them, stop all.
    The first gateway writes ``gateway.log``, the others ``gateway-<n>.log``; arguments as for
    ``live_stack``."""
    sim_port = free_port()
    sim_log = (workdir / "simulator.log").open("wb")
    simulator = subprocess.Popen(
        simulator_command(sim_port, *simulator_args, wrap=wrap),
        env=clean_env(),
        stdout=sim_log,
        stderr=subprocess.STDOUT,
    )
    gateways: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        simulator_url = f"http://127.0.0.1:{sim_port}"
        wait_until_answering(simulator_url + "/", simulator)
        config = workdir / "gateway.toml"
        config.write_text(extra_config + _tenants_toml(tenants))
        env = {
            **clean_env(),
            **(extra_env or {}),
            "HUAWEICLOUD_SDK_AK": LIVE_AK,
            "HUAWEICLOUD_SDK_SK": LIVE_SK,
            "METASTUDIO_PROJECT_ID": "sim-project",
            "METASTUDIO_ENDPOINT": simulator_url,
        }
        ports = [free_port() for _ in range(count)]
        for index, port in enumerate(ports):
            logs.append((workdir / ("gateway.log" if index == 0 else f"gateway-{index}.log")).open("wb"))
            gateways.append(
                subprocess.Popen(serve_command(config, port, wrap), env=env, stdout=logs[-1], stderr=subprocess.STDOUT)
            )
        for port, gateway in zip(ports, gateways, strict=True):
            wait_until_answering(f"http://127.0.0.1:{port}/readyz", gateway)
        yield tuple(
            LiveGateway(base_url=f"http://127.0.0.1:{port}", simulator_url=simulator_url, process=gateway)
            for port, gateway in zip(ports, gateways, strict=True)
        )
    finally:
        for gateway in gateways:
            if gateway.poll() is None:
                stop_process(gateway)
        stop_process(simulator)
        sim_log.close()
        for log in logs:
            log.close()


@dataclass
class RedisServer:
    """A ``redis-server`` we started on loopback: its port, URL (with the password) and process."""

    port: int
    password: str
    workdir: Path
    process: subprocess.Popen[bytes]
    cluster: bool = False

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """(Re)start the server on its port, waiting (bounded) until it answers PING."""
        self.process = _redis_process(self.port, self.password, self.workdir, cluster=self.cluster)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL), if still running."""
        if self.process.poll() is None:
            stop_process(self.process)

    def cli(self, *args: str) -> str:
        """A redis-cli command against this server; its output."""
        return subprocess.run(
            ["redis-cli", "-p", str(self.port), "--no-auth-warning", "-a", self.password, *args],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout.decode()


def _redis_process(port: int, password: str, workdir: Path, *, cluster: bool) -> subprocess.Popen[bytes]:
    args = ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    args += ["--requirepass", password, "--masterauth", password, "--dir", str(workdir)]
    if cluster:
        args += ["--cluster-enabled", "yes", "--cluster-config-file", str(workdir / f"nodes-{port}.conf")]
    log = (workdir / f"redis-{port}.log").open("ab")
    process = subprocess.Popen(["redis-server", *args], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server on {port} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
                answer = b""
                while b"PONG" not in answer and (chunk := sock.recv(64)):
                    answer += chunk
                if b"PONG" in answer:
                    return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise TimeoutError(f"redis-server on {port} did not answer within 10 s")


@contextmanager
def redis_server(workdir: Path, password: str) -> Iterator[RedisServer]:
    """A standalone ``redis-server`` on a free loopback port, no persistence, stopped by PID."""
    port = free_port()
    server = RedisServer(port, password, workdir, _redis_process(port, password, workdir, cluster=False))
    try:
        yield server
    finally:
        server.stop()


def _cluster_node_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is a port, and free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@contextmanager
def redis_cluster(workdir: Path, password: str, masters: int = 3) -> Iterator[tuple[RedisServer, ...]]:
    """A local Redis Cluster of ``masters`` nodes (no replicas), all slots assigned, stopped by PID."""
    nodes: list[RedisServer] = []
    try:
        for _ in range(masters):
            port = _cluster_node_port()
            nodes.append(
                RedisServer(port, password, workdir, _redis_process(port, password, workdir, cluster=True), True)
            )
        subprocess.run(
            [
                "redis-cli",
                "--no-auth-warning",
                "-a",
                password,
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            check=True,
            timeout=60,
        )
        deadline = time.monotonic() + 20
        while "cluster_state:ok" not in nodes[0].cli("cluster", "info"):
            if time.monotonic() > deadline:
                raise TimeoutError("the Redis Cluster did not reach cluster_state:ok within 20 s")
            time.sleep(0.1)
        yield tuple(nodes)
    finally:
        for node in nodes:
            node.stop()
