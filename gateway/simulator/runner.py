"""Running the simulator: on a free loopback port for tests and the demo, or blocking for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from gateway.clock import Clock, SystemClock
from gateway.simulator.app import CLOUD_STATE, DEFAULT_APP_USER_IDS, create_simulator_app
from gateway.simulator.cloud import CloudState
from gateway.simulator.state import SIMULATOR_STATE, SimulatorState


@dataclass(frozen=True, slots=True)
class RunningSimulator:
    """A started simulator: where it listens and its state (credentials read from the state)."""

    base_url: str
    state: SimulatorState
    cloud: CloudState
    """The fake cloud (IAM, STS, metadata, pod identity): what it issued, its controls and log."""

    @property
    def project_id(self) -> str:
        return self.state.project_id

    @property
    def access_key(self) -> str:
        return self.state.access_key

    @property
    def secret_key(self) -> str:
        return self.state.secret_key


def _url_host(host: str) -> str:
    """The host part of a URL that reaches a server bound to ``host``."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - a wildcard bind is reachable on loopback
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@asynccontextmanager
async def running_simulator(
    *,
    access_key: str = "sim-ak",
    secret_key: str = "sim-sk",  # noqa: S107 - the simulator's well-known test key
    clock: Clock | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    project_id: str = "sim-project",
    security_token: str | None = None,
    seed: int = 0,
    app_user_ids: Sequence[str] = DEFAULT_APP_USER_IDS,
    jobs_per_user: int | None = None,
) -> AsyncIterator[RunningSimulator]:
    """Serve a simulator on ``host:port`` (``0``: a free port) until the block exits."""
    app = create_simulator_app(
        access_key=access_key,
        secret_key=secret_key,
        clock=clock if clock is not None else SystemClock(),
        project_id=project_id,
        security_token=security_token,
        seed=seed,
        app_user_ids=app_user_ids,
        jobs_per_user=jobs_per_user,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_port = runner.addresses[0][1]
        yield RunningSimulator(
            base_url=f"http://{_url_host(host)}:{bound_port}", state=app[SIMULATOR_STATE], cloud=app[CLOUD_STATE]
        )
    finally:
        await runner.cleanup()


async def _serve_until_stopped(
    *, host: str, port: int, access_key: str, secret_key: str, project_id: str, jobs_per_user: int | None
) -> None:
    """Serve, announce where, and wait for SIGTERM (SIGINT cancels this coroutine)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with running_simulator(
        access_key=access_key,
        secret_key=secret_key,
        host=host,
        port=port,
        project_id=project_id,
        jobs_per_user=jobs_per_user,
    ) as simulator:
        print(
            f"MetaStudio simulator listening on {simulator.base_url} -- "
            f"METASTUDIO_ENDPOINT={simulator.base_url} METASTUDIO_PROJECT_ID={project_id} "
            f"HUAWEICLOUD_SDK_AK={access_key} "
            f"HUAWEICLOUD_SDK_SK={secret_key}\n"
            f"built-in app user ids: {', '.join(DEFAULT_APP_USER_IDS)}; "
            "any other app_user_id gets its own jobs too (the same id, the same jobs)",
            flush=True,
        )
        await stop.wait()


def run_simulator(
    *,
    host: str,
    port: int,
    access_key: str,
    secret_key: str,
    project_id: str = "sim-project",
    jobs_per_user: int | None = None,
) -> None:
    """Serve the simulator on the system clock until SIGINT/SIGTERM; prints where and with which keys.

    ``jobs_per_user``: each app user id's job count (default: 25 to 40, see ``dataset``).
    """
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _serve_until_stopped(
                host=host,
                port=port,
                access_key=access_key,
                secret_key=secret_key,
                project_id=project_id,
                jobs_per_user=jobs_per_user,
            )
        )
