"""The demo page and cover-image links in a real browser: headless Chromium (Debian's, driven by PyPI
playwright, never a downloaded browser) against real processes.

* ``metastudio-gateway demo`` as a user runs it: its page signs a demo user in at the fake IdP and
  shows the tenant's jobs grouped by state, every cover a plain ``<img src=cover_image_url>``.
* ``metastudio-gateway serve`` with a 2 s link TTL: a link that loaded while fresh is a broken image
  once expired, and an altered link is a broken image at once.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from playwright.async_api import Browser, Page

from tests.browser.conftest import TIMEOUT_MS, TIMEOUT_S
from tests.live import LiveGateway, live_gateway
from tests.stack import clean_env, stop_process

pytestmark = pytest.mark.browser
SCREENSHOT = "demo-page.png"


@dataclass(frozen=True)
class Demo:
    """Where the running demo's gateway and page are."""

    gateway: str
    page: str


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    """``metastudio-gateway demo`` on free ports, until its instructions are printed (bounded)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--port", "0", "--page-port", "0"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    output = ""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and "/readyz" not in output:
            line = process.stdout.readline()
            if not line:
                break
            output += line
        gateway = re.search(r"gateway on (http://127\.0\.0\.1:\d+)", output)
        page = re.search(r"Open (http://127\.0\.0\.1:\d+)/ in a browser", output)
        assert gateway and page, output
        yield Demo(gateway=gateway.group(1), page=page.group(1))
    finally:
        stop_process(process)  # type: ignore[arg-type]  # text mode: the same process
        process.stdout.close()


@pytest.fixture(scope="module")
def short_links(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    """A served gateway whose cover-image links last 2 s."""
    config = "[covers]\nimage_url_ttl_seconds = 2\n"
    with live_gateway(tmp_path_factory.mktemp("short-links"), extra_config=config) as live:
        yield live


async def fresh_page(browser: Browser, width: int = 1280) -> Page:
    """A page in a new context: nothing cached from earlier loads."""
    context = await browser.new_context(viewport={"width": width, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    return await context.new_page()


async def image_loads(browser: Browser, url: str) -> bool:
    """Whether ``url`` as an ``<img src>`` (no header can be sent) decodes to an image."""
    page = await fresh_page(browser)
    try:
        await page.set_content(f'<img id="cover" src="{url}">')
        await page.wait_for_function("document.getElementById('cover').complete")
        return bool(await page.eval_on_selector("#cover", "img => img.naturalWidth > 0"))
    finally:
        await page.context.close()


async def acme_jobs(base_url: str, api_key: str, limit: int = 100) -> list[dict[str, Any]]:
    """acme's jobs as the API lists them; a ``limit`` not asked before is a cache miss: links made now."""
    url = f"{base_url}/v1/training-jobs?limit={limit}"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session,
        session.get(url, headers={"Authorization": f"Bearer {api_key}"}) as resp,
    ):
        assert resp.status == 200
        jobs: list[dict[str, Any]] = (await resp.json())["jobs"]
        return jobs


async def test_the_demo_page_signs_in_and_shows_every_cover(browser: Browser, demo: Demo, tmp_path: Path) -> None:
    """Signed in as alice (JWT from the fake IdP), the page shows acme's jobs grouped by state_group with
    counts, and every job with a cover has an <img> that decoded (naturalWidth > 0) from its cover_image_url."""
    page = await fresh_page(browser)
    await page.goto(f"{demo.page}/")
    await page.click("button[data-username=alice]")
    await page.wait_for_selector("#status[data-state=ready]")
    await page.wait_for_function("[...document.images].every(img => !img.getAttribute('src') || img.complete)")
    await page.screenshot(path=tmp_path / SCREENSHOT, full_page=True)
    expected = await acme_jobs(demo.gateway, "demo-key-acme")
    with_cover = {job["job_id"] for job in expected if "cover_image_url" in job}
    images = await page.eval_on_selector_all(
        ".job img[src]",
        "imgs => imgs.map(img => ({job: img.closest('.job').dataset.jobId, src: img.src, width: img.naturalWidth}))",
    )
    assert {image["job"] for image in images} == with_cover and len(images) == len(with_cover) >= 3
    assert all(image["width"] > 0 for image in images), images
    assert all("/cover-image?" in image["src"] and image["src"].startswith(demo.gateway) for image in images)
    groups = await page.eval_on_selector_all(
        ".group", "sections => sections.map(s => [s.dataset.group, +s.querySelector('.count').textContent])"
    )
    counts: dict[str, int] = {}
    for job in expected:
        counts[job["state_group"]] = counts.get(job["state_group"], 0) + 1
    assert dict(groups) == counts
    assert await page.text_content("#who-tenant") == "acme"


async def test_an_expired_link_no_longer_loads(browser: Browser, short_links: LiveGateway) -> None:
    """With a 2 s TTL: the link loads as an image while fresh, and is a broken image once its expiry passed."""
    jobs = await acme_jobs(short_links.base_url, short_links.acme_key, limit=100)
    url = short_links.base_url + next(job["cover_image_url"] for job in jobs if "cover_image_url" in job)
    assert await image_loads(browser, url)
    expiry = int(dict(parse_qsl(urlsplit(url).query))["exp"])
    await asyncio.sleep(max(0.0, expiry - time.time()) + 0.2)  # a real browser cannot move a fake clock
    assert not await image_loads(browser, url)


async def test_an_altered_link_is_a_broken_image(browser: Browser, short_links: LiveGateway) -> None:
    """A fresh link with one character of its signature changed never loads."""
    jobs = await acme_jobs(short_links.base_url, short_links.acme_key, limit=99)
    url = short_links.base_url + next(job["cover_image_url"] for job in jobs if "cover_image_url" in job)
    sig = dict(parse_qsl(urlsplit(url).query))["sig"]
    altered = url.replace(f"sig={sig}", f"sig={'A' if sig[0] != 'A' else 'B'}{sig[1:]}")
    assert await image_loads(browser, url)
    assert not await image_loads(browser, altered)
