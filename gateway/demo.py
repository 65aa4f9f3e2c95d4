"""``metastudio-gateway demo``: the simulator, a fake identity provider, the gateway and a web page, on loopback.

Needs no credentials and no network: the simulator accepts a demo key pair, the gateway signs
with it, and two demo tenants are configured, each reachable with a demo API key and with the JWTs
the fake IdP (``gateway.simulator.idp``) issues to its demo users (alice for acme, bob for globex),
mapped by the tokens' ``tenant`` claim. A small page on its own port (``gateway/demo_page/``)
signs a demo user in and shows the tenant's jobs grouped by state, covers as plain
``<img src=cover_image_url>``; the gateway's CORS allow-list holds exactly the page's origin.
Prints curl commands that work as pasted (on stdout, beside the access log); process logs are JSON
lines on stderr, as with ``serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import aiohttp
from aiohttp import web

from gateway.admission.api_keys import hash_key
from gateway.app import create_app
from gateway.clock import SystemClock
from gateway.config.settings import (
    CorsSettings,
    OidcIssuer,
    OidcSettings,
    ServerSettings,
    Settings,
    UpstreamSettings,
)
from gateway.config.url_signing import random_url_signing_keys
from gateway.credentials.static import CredentialSource
from gateway.fastpath.protocol import GatewayRunner
from gateway.observability.logs import log_event
from gateway.server import connection_options
from gateway.simulator import running_simulator
from gateway.simulator.idp import DEFAULT_AUDIENCE, DEMO_USERS, running_idp
from gateway.tenant import Tenant

# (tenant id, app user id, API key): demo values, printed on purpose.
DEMO_TENANTS = (("acme", "acme-web", "demo-key-acme"), ("globex", "globex-app", "demo-key-globex"))
DEMO_ISSUER = "demo-idp"
"""The fake IdP's name in ``[[oidc.issuers]]``; its demo users' ``tenant`` claim is a tenant id."""
TOKEN_LIFETIME_SECONDS = 8 * 3600
COVER_FILE = "/tmp/metastudio-cover.png"  # noqa: S108 - a demo download, outside the user's clone
COVER_IMAGE_FILE = "/tmp/metastudio-cover-image.png"  # noqa: S108 - likewise
PAGE_FILES = {"": "index.html", "index.html": "index.html", "app.css": "app.css", "app.js": "app.js"}
CONTENT_TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript"}
_log = logging.getLogger("gateway.demo")


@dataclass(frozen=True, slots=True)
class Places:
    """Where the demo's servers are reached."""

    gateway: str
    page: str
    idp: str


def demo_settings(
    endpoint: str,
    project_id: str,
    *,
    issuer: str | None = None,
    page_origin: str | None = None,
    public_base_url: str = "",
) -> Settings:
    """Settings for the demo tenants in front of a simulator at ``endpoint``; with ``issuer`` (the fake
    IdP's URL) its users' JWTs name the tenants, with ``page_origin`` the demo page may call the API."""
    issuers: tuple[OidcIssuer, ...] = ()
    if issuer is not None:
        issuers = (
            OidcIssuer(name=DEMO_ISSUER, issuer=issuer, jwks_uri=f"{issuer}/jwks", audiences=(DEFAULT_AUDIENCE,)),
        )
    return Settings(
        upstream=UpstreamSettings(endpoint=endpoint, project_id=project_id),
        tenants=tuple(
            Tenant(tid, user, (hash_key(key),), oidc=((DEMO_ISSUER, (tid,)),) if issuers else ())
            for tid, user, key in DEMO_TENANTS
        ),
        oidc=OidcSettings(issuers=issuers),
        cors=CorsSettings(allowed_origins=(page_origin,) if page_origin else ()),
        server=ServerSettings(public_base_url=public_base_url),
    )


def instructions(places: Places, jobs: Sequence[dict[str, Any]], jwt: str, cover_image_url: str) -> str:
    """The ready-to-paste commands for the demo at ``places``; ``jwt`` is alice's token and
    ``cover_image_url`` a link from acme's jobs."""
    base = places.gateway
    _, user, key = DEMO_TENANTS[0]
    mine = [job for job in jobs if job.get("app_user_id") == user]
    with_cover = next(job["job_id"] for job in mine if job.get("_has_cover"))
    auth = f"-H 'Authorization: Bearer {key}'"
    other_key = DEMO_TENANTS[1][2]
    download = "-w '%{http_code} %{content_type} %{size_download} bytes\\n'"
    alice, bob = sorted(DEMO_USERS)
    return "\n".join(
        [
            f"metastudio-gateway demo: gateway on {base} (simulated MetaStudio behind it). Ctrl-C stops.",
            f"Open {places.page}/ in a browser: sign in as {alice} ({DEMO_USERS[alice]}) or {bob}"
            f" ({DEMO_USERS[bob]}) to see the jobs by state, covers and all.",
            "",
            "# list acme's completed jobs",
            f"curl -s {auth} '{base}/v1/training-jobs?state_group=completed&limit=3'",
            "# the same list again is a cache hit (see X-Cache and Age)",
            f"curl -s -D - -o /dev/null {auth} '{base}/v1/training-jobs?state_group=completed&limit=3'",
            "# one job",
            f"curl -s {auth} {base}/v1/training-jobs/{with_cover}",
            "# its cover, through the stable path that always redirects to a live link",
            f"curl -sL -o {COVER_FILE} {download} {auth} {base}/v1/training-jobs/{with_cover}/cover",
            "# another tenant sees only its own jobs",
            f"curl -s -H 'Authorization: Bearer {other_key}' '{base}/v1/training-jobs?limit=2'",
            f"# {alice}'s access token (a JWT) from the demo identity provider",
            f"curl -s -d username={alice} {places.idp}/token",
            f"# acme's jobs with {alice}'s JWT instead of an API key (this token works for 8 hours)",
            f"curl -s -H 'Authorization: Bearer {jwt}' '{base}/v1/training-jobs?limit=2'",
            "# a job's cover_image_url needs no header at all, as an <img> loads it (this link works 15 minutes)",
            f"curl -sL -o {COVER_IMAGE_FILE} {download} '{cover_image_url}'",
            "# metrics, health",
            f"curl -s {base}/metrics | grep metastudio_gateway_cache",
            f"curl -s {base}/readyz",
        ]
    )


def page_app(config: Mapping[str, Any]) -> web.Application:
    """The demo page: its static files (package data) and ``config.json`` (where everything is)."""
    folder = files("gateway").joinpath("demo_page")
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}

    async def static(request: web.Request) -> web.Response:
        name = PAGE_FILES.get(request.match_info["name"])
        if name is None:
            raise web.HTTPNotFound()
        content_type = CONTENT_TYPES[name[name.rindex(".") :]]
        return web.Response(body=folder.joinpath(name).read_bytes(), content_type=content_type, headers=headers)

    async def config_json(_request: web.Request) -> web.Response:
        return web.json_response(dict(config), headers=headers)

    app = web.Application()
    app.router.add_get("/config.json", config_json)
    app.router.add_get("/{name:[a-z.]*}", static)
    return app


def _loopback_socket(port: int) -> socket.socket:
    """A socket bound to 127.0.0.1:``port`` (0: a free one), so its URL is known before serving."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def _url(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def _first_steps(places: Places, username: str) -> tuple[str, str]:
    """A demo user's JWT from the IdP's token endpoint, and a cover_image_url of that user's tenant."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{places.idp}/token", data={"username": username}) as response:
            response.raise_for_status()
            jwt = str((await response.json())["access_token"])
        async with session.get(
            f"{places.gateway}/v1/training-jobs?limit=100", headers={"Authorization": f"Bearer {jwt}"}
        ) as response:
            response.raise_for_status()
            jobs = (await response.json())["jobs"]
    return jwt, next(str(job["cover_image_url"]) for job in jobs if "cover_image_url" in job)


async def run_demo(port: int, page_port: int = 8081) -> None:
    """Serve the demo until interrupted."""
    clock = SystemClock()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    gateway_socket = _loopback_socket(port)
    page_socket = _loopback_socket(page_port)
    async with (
        running_simulator(clock=clock) as simulator,
        running_idp(clock=clock, token_lifetime_seconds=TOKEN_LIFETIME_SECONDS) as idp,
    ):
        places = Places(gateway=_url(gateway_socket), page=_url(page_socket), idp=idp.issuer)
        credentials = CredentialSource(
            {"HUAWEICLOUD_SDK_AK": simulator.access_key, "HUAWEICLOUD_SDK_SK": simulator.secret_key},
            clock=clock,
        )
        settings = demo_settings(
            simulator.base_url,
            simulator.project_id,
            issuer=idp.issuer,
            page_origin=places.page,
            public_base_url=places.gateway,
        )
        app = create_app(settings, credentials=credentials, clock=clock, url_signing_keys=random_url_signing_keys())
        runner = GatewayRunner(app, **connection_options(settings.server))
        users = [{"username": name, "tenant": tenant} for name, tenant in sorted(DEMO_USERS.items())]
        page_runner = web.AppRunner(
            page_app({"gateway": places.gateway, "token_url": idp.token_url, "users": users}), access_log=None
        )
        await runner.setup()
        await page_runner.setup()
        try:
            await web.SockSite(runner, gateway_socket).start()
            await web.SockSite(page_runner, page_socket).start()
            log_event(
                _log,
                f"metastudio-gateway demo listening on {places.gateway}",
                event="listening",
                url=places.gateway,
                page_url=places.page,
                idp_url=places.idp,
                simulator_url=simulator.base_url,
            )
            jwt, cover_image_url = await _first_steps(places, users[0]["username"])
            print(instructions(places, simulator.state.jobs, jwt, cover_image_url), flush=True)
            await stop.wait()
            log_event(_log, "stopping", event="stopping")
        finally:
            await page_runner.cleanup()
            await runner.cleanup()
    log_event(_log, "stopped", event="stopped")
