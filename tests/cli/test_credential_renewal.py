"""A real ``serve`` process on CCE pod identity, with credentials that live 4 seconds, under steady
load: the credentials are renewed several times behind the requests and no request fails."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from pathlib import Path

import aiohttp

from gateway.simulator.cloud import POD_IDENTITY_PATH
from tests.leaks import register_secrets, unwatch, watch
from tests.stack import (
    ACME_KEY,
    _tenants_toml,
    clean_env,
    free_port,
    serve_command,
    simulator_command,
    stop_process,
    wait_until_answering,
)

POD_TOKEN = "sim-pod-identity-token"  # the simulator's well-known pod identity token
LIFETIME_SECONDS = 4
LOAD_SECONDS = 10.0
register_secrets([POD_TOKEN, ACME_KEY])


async def _steady_load(base_url: str, seconds: float) -> Counter[int]:
    """Four clients in a loop for ``seconds``, over changing pages (so calls go upstream)."""
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds

    async def client(index: int) -> None:
        async with aiohttp.ClientSession(base_url=base_url) as session:
            page = index
            while time.monotonic() < deadline:
                page = (page + 4) % 200
                async with session.get(
                    f"/v1/training-jobs?offset={page}", headers={"Authorization": f"Bearer {ACME_KEY}"}
                ) as response:
                    await response.read()
                    statuses[response.status] += 1
                await asyncio.sleep(0.02)

    await asyncio.gather(*(client(index) for index in range(4)))
    return statuses


def test_serve_renews_short_lived_credentials_under_load_without_a_failed_request(tmp_path: Path) -> None:
    """Pod identity credentials living 4 s: at least two renewals during 10 s of load, every request 200."""
    sim_port, port = free_port(), free_port()
    simulator_url, base_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{port}"
    token_file = tmp_path / "pod-token"
    token_file.write_text(POD_TOKEN + "\n")
    config = tmp_path / "gateway.toml"
    config.write_text("[cache]\nttl_seconds = 1\n" + _tenants_toml([("acme", "acme-web", ACME_KEY)]))
    log = tmp_path / "gateway.log"
    watch(log)
    with (tmp_path / "simulator.log").open("wb") as sim_log, log.open("wb") as gateway_log:
        simulator = subprocess.Popen(
            simulator_command(sim_port), env=clean_env(), stdout=sim_log, stderr=subprocess.STDOUT
        )
        gateway = None
        try:
            wait_until_answering(simulator_url + "/", simulator)
            asyncio.run(
                _put(simulator_url + "/_simulator/cloud", {"pod-identity": {"lifetime_seconds": LIFETIME_SECONDS}})
            )
            gateway = subprocess.Popen(
                serve_command(config, port),
                env=clean_env(
                    HC_CONTAINER_CREDENTIALS_FULL_URI=simulator_url + POD_IDENTITY_PATH,
                    HC_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file),
                    METASTUDIO_PROJECT_ID="sim-project",
                    METASTUDIO_ENDPOINT=simulator_url,
                ),
                stdout=gateway_log,
                stderr=subprocess.STDOUT,
            )
            wait_until_answering(base_url + "/readyz", gateway)  # 200 once the first credentials came
            statuses = asyncio.run(_steady_load(base_url, LOAD_SECONDS))
            cloud = asyncio.run(_get(simulator_url + "/_simulator/cloud"))
        finally:
            if gateway is not None:
                stop_process(gateway)
            stop_process(simulator)
            unwatch(log)
    assert set(statuses) == {200}, statuses
    assert sum(statuses.values()) > 100
    assert cloud["requests"].get("pod-identity 200", 0) >= 3  # the first fetch and at least two renewals


async def _put(url: str, body: dict[str, object]) -> None:
    async with aiohttp.ClientSession() as session, session.put(url, json=body) as response:
        assert response.status == 200, await response.text()


async def _get(url: str) -> dict[str, dict[str, int]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        result: dict[str, dict[str, int]] = await response.json()
        return result
