"""A real headless Chromium (Debian's, driven by Playwright) against a real Bastion on loopback."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.harness import ROOT

CHROMIUM = os.environ.get("BASTION_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Where the tests leave a screenshot of every main page (git-ignored), to look at.
SHOTS = Path(os.environ.get("BASTION_SCREENSHOTS", ROOT / ".tooling" / "screenshots"))
_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert os.access(CHROMIUM, os.X_OK), f"Chromium is needed at {CHROMIUM} (scripts/test installs Debian's)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()
