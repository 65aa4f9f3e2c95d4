"""``metastudio-gateway demo``: the simulator and the gateway in front of it, on loopback.

Needs no credentials and no network: the simulator accepts a demo key pair, the gateway signs
with it, and two demo tenants are configured. Prints curl commands that work as pasted (on
stdout, beside the access log); process logs are JSON lines on stderr, as with ``serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from gateway.admission.api_keys import hash_key
from gateway.app import create_app
from gateway.clock import SystemClock
from gateway.config.settings import Settings, UpstreamSettings
from gateway.credentials.static import CredentialSource
from gateway.fastpath.protocol import GatewayRunner
from gateway.observability.logs import log_event
from gateway.simulator import running_simulator
from gateway.tenant import Tenant

# (tenant id, app user id, API key): demo values, printed on purpose.
DEMO_TENANTS = (("acme", "acme-web", "demo-key-acme"), ("globex", "globex-app", "demo-key-globex"))
COVER_FILE = "/tmp/metastudio-cover.png"  # noqa: S108 - a demo download, outside the user's clone
_log = logging.getLogger("gateway.demo")


def demo_settings(endpoint: str, project_id: str) -> Settings:
    """Settings for the demo tenants in front of a simulator at ``endpoint``."""
    return Settings(
        upstream=UpstreamSettings(endpoint=endpoint, project_id=project_id),
        tenants=tuple(Tenant(tid, user, (hash_key(key),)) for tid, user, key in DEMO_TENANTS),
    )


def instructions(base: str, jobs: Sequence[dict[str, Any]]) -> str:
    """The ready-to-paste commands for the demo running at ``base``."""
    _, user, key = DEMO_TENANTS[0]
    mine = [job for job in jobs if job.get("app_user_id") == user]
    with_cover = next(job["job_id"] for job in mine if job.get("_has_cover"))
    auth = f"-H 'Authorization: Bearer {key}'"
    other_key = DEMO_TENANTS[1][2]
    return "\n".join(
        [
            f"metastudio-gateway demo: gateway on {base} (simulated MetaStudio behind it). Ctrl-C stops.",
            "",
            "# list acme's completed jobs",
            f"curl -s {auth} '{base}/v1/training-jobs?state_group=completed&limit=3'",
            "# the same list again is a cache hit (see X-Cache and Age)",
            f"curl -s -D - -o /dev/null {auth} '{base}/v1/training-jobs?state_group=completed&limit=3'",
            "# one job",
            f"curl -s {auth} {base}/v1/training-jobs/{with_cover}",
            "# its cover, through the stable path that always redirects to a live link",
            f"curl -sL -o {COVER_FILE} -w '%{{http_code}} %{{content_type}} %{{size_download}} bytes\\n' {auth} "
            f"{base}/v1/training-jobs/{with_cover}/cover",
            "# another tenant sees only its own jobs",
            f"curl -s -H 'Authorization: Bearer {other_key}' '{base}/v1/training-jobs?limit=2'",
            "# metrics, health",
            f"curl -s {base}/metrics | grep metastudio_gateway_cache",
            f"curl -s {base}/readyz",
        ]
    )


async def run_demo(port: int) -> None:
    """Serve the demo until interrupted."""
    clock = SystemClock()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with running_simulator(clock=clock) as simulator:
        credentials = CredentialSource(
            {"HUAWEICLOUD_SDK_AK": simulator.access_key, "HUAWEICLOUD_SDK_SK": simulator.secret_key},
            clock=clock,
        )
        app = create_app(demo_settings(simulator.base_url, simulator.project_id), credentials=credentials, clock=clock)
        runner = GatewayRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            base = f"http://127.0.0.1:{runner.addresses[0][1]}"
            log_event(
                _log,
                f"metastudio-gateway demo listening on {base}",
                event="listening",
                url=base,
                simulator_url=simulator.base_url,
            )
            print(instructions(base, simulator.state.jobs), flush=True)
            await stop.wait()
            log_event(_log, "stopping", event="stopping")
        finally:
            await runner.cleanup()
    log_event(_log, "stopped", event="stopped")
