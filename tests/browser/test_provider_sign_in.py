"""Signing in with the external identity provider in a real browser: the provider runs on another
site (127.0.0.2, while Bastion is on 127.0.0.1) and the person approves on its page, so the callback
arrives on a navigation that began cross-site, where Chromium withholds SameSite=Strict cookies even
after a same-origin redirect; the person must still land signed in."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.auth.fake_oidc import CLIENT_ID, CLIENT_SECRET, FakeProvider
from tests.browser.test_admin_ui import ADMIN, PASSWORD, shot
from tests.harness import Running, free_port, serve, serve_asgi, settings_for

pytestmark = [pytest.mark.anyio, pytest.mark.database_free]


@dataclass
class Setup:
    gateway: Running
    idp: FakeProvider


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    idp = FakeProvider(interactive=True)
    async with serve_asgi(idp.app(), host="127.0.0.2") as url:
        idp.url = url
        settings = settings_for(
            f"sqlite+aiosqlite:///{tmp_path}/bastion.db",
            admin_email=ADMIN,
            admin_password=PASSWORD,
            port=free_port(),
            oidc_issuer=url,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=CLIENT_SECRET,
            oidc_provider_name="Example ID",
        )
        async with serve(settings) as gateway:
            yield Setup(gateway, idp)


async def test_a_person_clicks_the_provider_button_and_lands_signed_in(setup: Setup, browser: Browser) -> None:
    base = setup.gateway.base_url
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(10_000)
    await page.goto(f"{base}/admin/tokens")
    await expect(page).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin%2Ftokens"))
    await shot(page, "20-sign-in-with-provider")
    await page.get_by_role("link", name="Sign in with Example ID").click()
    await expect(page.get_by_role("heading", name="Example ID")).to_be_visible()
    await page.get_by_role("link", name="Approve").click()  # on the provider's site
    await expect(page).to_have_url(f"{base}/admin/tokens")
    await expect(page.locator("header .who")).to_contain_text("ada@example.com")
    cookies = {c["name"]: c for c in await page.context.cookies([f"{base}/admin/tokens", f"{base}/admin/oidc/callback"])}
    assert cookies["bastion_ui"]["sameSite"] == "Strict" and cookies["bastion_ui"]["httpOnly"]
    assert "bastion_oidc" not in cookies  # the flow is over
    await shot(page, "21-signed-in-with-provider")

    # Sign out: of Bastion and, through the provider's end_session_endpoint, of the provider too
    # (RP-initiated logout), back on the sign-in page.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/admin/login"))
    assert len(setup.idp.logouts) == 1 and setup.idp.logouts[0]["client_id"] == CLIENT_ID
    # Then the provider's refusal is a clear message on the sign-in page.
    setup.idp.deny = "access_denied"
    await page.get_by_role("link", name="Sign in with Example ID").click()
    await page.get_by_role("link", name="Approve").click()
    await expect(page.get_by_role("alert")).to_have_text("the identity provider did not sign you in (access_denied)")
