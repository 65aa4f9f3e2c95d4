"""A real deployment on loopback, for live tests, the chaos script and benchmarks:
``metastudio-gateway simulator`` and ``metastudio-gateway serve`` as subprocesses, configured as
an operator would (TOML file + environment), stopped by PID afterwards."""

from __future__ import annotations

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
_STRIPPED_PREFIXES = ("HUAWEICLOUD_", "CLOUD_SDK_", "METASTUDIO_", "GATEWAY_")
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
    sim_port, gateway_port = free_port(), free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_PREFIXES)}
    sim_log = (workdir / "simulator.log").open("wb")
    simulator = subprocess.Popen(
        [
            *wrap,
            sys.executable,
            "-m",
            "gateway",
            "simulator",
            "--port",
            str(sim_port),
            "--ak",
            LIVE_AK,
            "--sk",
            LIVE_SK,
            *simulator_args,
        ],
        env=base_env,
        stdout=sim_log,
        stderr=subprocess.STDOUT,
    )
    gateway: subprocess.Popen[bytes] | None = None
    gateway_log = (workdir / "gateway.log").open("wb")
    try:
        simulator_url = f"http://127.0.0.1:{sim_port}"
        wait_until_answering(simulator_url + "/", simulator)
        config = workdir / "gateway.toml"
        config.write_text(extra_config + _tenants_toml(tenants))
        env = {
            **base_env,
            **(extra_env or {}),
            "HUAWEICLOUD_SDK_AK": LIVE_AK,
            "HUAWEICLOUD_SDK_SK": LIVE_SK,
            "METASTUDIO_PROJECT_ID": "sim-project",
            "METASTUDIO_ENDPOINT": simulator_url,
        }
        gateway = subprocess.Popen(
            [
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
                str(gateway_port),
            ],
            env=env,
            stdout=gateway_log,
            stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{gateway_port}"
        wait_until_answering(base_url + "/readyz", gateway)
        yield LiveGateway(base_url=base_url, simulator_url=simulator_url, process=gateway)
    finally:
        if gateway is not None:
            stop_process(gateway)
        stop_process(simulator)
        sim_log.close()
        gateway_log.close()
