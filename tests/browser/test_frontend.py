"""A browser frontend on another origin: headless Chromium calls the live gateway with fetch() and CORS.

The page (``page/``) is served from its own loopback origin; the gateway allows exactly that origin.
A second copy served from another port is not allowed. Chromium is Debian's, driven by PyPI
playwright (never a downloaded browser); a missing Chromium or playwright fails these tests.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import yarl
from playwright.async_api import Browser, Page, Request

from tests.browser.conftest import TIMEOUT_MS, TIMEOUT_S
from tests.live import LiveGateway, live_gateway

pytestmark = pytest.mark.browser

PAGE_DIR = Path(__file__).parent / "page"


class _QuietFiles(SimpleHTTPRequestHandler):
    """Serves the page's files without logging every request to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_site() -> Iterator[str]:
    """Serve ``page/`` on a free loopback port; yield its origin (``http://127.0.0.1:<port>``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietFiles, directory=str(PAGE_DIR)))
    thread = threading.Thread(target=server.serve_forever, name="static-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass(frozen=True)
class Deployment:
    """The live gateway and the two origins the page is served from."""

    live: LiveGateway
    allowed_origin: str
    other_origin: str


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with static_site() as allowed_origin, static_site() as other_origin:
        cors = f'[cors]\nallowed_origins = ["{allowed_origin}"]\n'
        with live_gateway(tmp_path_factory.mktemp("live"), extra_config=cors) as live:
            yield Deployment(live=live, allowed_origin=allowed_origin, other_origin=other_origin)


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def open_frontend(page: Page, origin: str, deployment: Deployment) -> str:
    """Load the page from ``origin``; wait until it is ``ready`` (names and covers shown) or ``error``; return which."""
    settings = urlencode({"gateway": deployment.live.base_url, "key": deployment.live.acme_key})
    await page.goto(f"{origin}/index.html#{settings}")
    await page.wait_for_function("document.getElementById('status').dataset.state !== 'loading'")
    return str(await page.get_attribute("#status", "data-state"))


async def api_jobs(live: LiveGateway) -> list[dict[str, Any]]:
    """The acme tenant's first page of jobs, as the API returns it outside the browser."""
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"{live.base_url}/v1/training-jobs", headers={"Authorization": f"Bearer {live.acme_key}"}) as resp,
    ):
        assert resp.status == 200
        jobs: list[dict[str, Any]] = (await resp.json())["jobs"]
        return jobs


async def test_allowed_origin_renders_the_tenants_job_names(page: Page, deployment: Deployment, tmp_path: Path) -> None:
    """A page on the allowed origin shows exactly the job names the API returns for its tenant, in order."""
    await open_frontend(page, deployment.allowed_origin, deployment)
    await page.screenshot(path=tmp_path / "frontend.png", full_page=True)
    expected = [job["name"] for job in await api_jobs(deployment.live)]
    assert expected
    assert await page.locator(".job .name").all_text_contents() == expected


async def test_every_cover_loads_through_the_stable_cover_path(page: Page, deployment: Deployment) -> None:
    """Each job's cover is fetched at /v1/training-jobs/{id}/cover, redirected to storage, and decoded."""
    redirects: dict[str, str] = {}

    def record(request: Request) -> None:
        if request.redirected_from is not None:
            redirects[request.redirected_from.url] = request.url

    page.on("request", record)
    state = await open_frontend(page, deployment.allowed_origin, deployment)
    assert state == "ready", await page.text_content("#status")
    images = await page.eval_on_selector_all(
        "img", "imgs => imgs.map(img => ({complete: img.complete, width: img.naturalWidth}))"
    )
    with_cover = [job for job in await api_jobs(deployment.live) if "cover_url" in job]
    assert len(images) == len(with_cover) >= 3
    assert all(image["complete"] and image["width"] > 0 for image in images), images
    cover_paths = {yarl.URL(deployment.live.base_url).join(yarl.URL(job["cover_url"])) for job in with_cover}
    assert {yarl.URL(url) for url in redirects} == cover_paths
    assert all(url.startswith(f"{deployment.live.simulator_url}/obs/") for url in redirects.values())


async def test_preflight_to_the_gateway_succeeds_for_the_allowed_origin(page: Page, deployment: Deployment) -> None:
    """The Authorization header makes Chromium preflight the gateway; the preflight is approved for the origin."""
    # Playwright's page.on("request") deliberately hides CORS preflights, so listen on the DevTools protocol.
    preflights: dict[str, str] = {}
    approved: list[tuple[str, int, dict[str, str]]] = []
    some_approved = asyncio.Event()

    def sent(event: dict[str, Any]) -> None:
        if event["initiator"].get("type") == "preflight":
            preflights[event["requestId"]] = event["request"]["url"]

    def answered(event: dict[str, Any]) -> None:
        if event.get("type") == "Preflight":
            response = event["response"]
            headers = {name.lower(): value for name, value in response["headers"].items()}
            approved.append((response["url"], response["status"], headers))
            some_approved.set()

    cdp = await page.context.new_cdp_session(page)
    cdp.on("Network.requestWillBeSent", sent)
    cdp.on("Network.responseReceived", answered)
    await cdp.send("Network.enable")
    await open_frontend(page, deployment.allowed_origin, deployment)
    await asyncio.wait_for(some_approved.wait(), TIMEOUT_S)
    assert f"{deployment.live.base_url}/v1/training-jobs" in preflights.values()
    assert approved
    for url, status, headers in approved:
        assert url.startswith(f"{deployment.live.base_url}/v1/training-jobs")
        assert status == 204
        assert headers["access-control-allow-origin"] == deployment.allowed_origin
        assert "authorization" in headers["access-control-allow-headers"].lower()


async def test_other_origin_is_refused(page: Page, deployment: Deployment) -> None:
    """A page on a non-allowed origin: fetch() rejects with TypeError, an error shows, and no job is rendered."""
    assert await open_frontend(page, deployment.other_origin, deployment) == "error"
    assert await page.get_attribute("#status", "data-error-name") == "TypeError"
    assert await page.locator(".job").count() == 0


async def test_cover_storage_answers_allow_any_origin(deployment: Deployment) -> None:
    """The simulator's cover URL (the gateway's 302 target) sends Access-Control-Allow-Origin: * on 200 and 403."""
    live = deployment.live
    job = next(job for job in await api_jobs(live) if "cover_url" in job)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(
            live.base_url + job["cover_url"],
            headers={"Authorization": f"Bearer {live.acme_key}"},
            allow_redirects=False,
        ) as redirect:
            assert redirect.status == 302
            location = redirect.headers["Location"]
        tampered = location.replace("Expires=", "Expires=1")
        for url, status in ((location, 200), (tampered, 403)):
            async with session.get(yarl.URL(url, encoded=True)) as response:
                assert response.status == status
                assert response.headers["Access-Control-Allow-Origin"] == "*"
