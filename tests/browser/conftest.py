"""Shared set-up for the browser tests: Debian's Chromium, driven by PyPI playwright (never a
downloaded browser); a missing Chromium or playwright fails these tests, it never skips them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000
TIMEOUT_S = TIMEOUT_MS / 1000


@pytest.fixture(scope="session")
def chromium() -> Path:
    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: install Debian's chromium (scripts/test does)"
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """A fresh headless Chromium for the test, closed afterwards."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_FLAGS, headless=True, timeout=TIMEOUT_MS
        )
        try:
            yield launched
        finally:
            await launched.close()
