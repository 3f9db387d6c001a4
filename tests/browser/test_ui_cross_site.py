"""The admin UI against pages of other origins, in a real browser.

- A link from another site to any /admin page signed the user out: the SameSite=Strict session cookie
  is not sent on a cross-site navigation, and the "sign in first" redirect deleted it (Chromium applies
  that deletion). Only a cookie that was sent and is no good is deleted now.
- A page on another port of the same host (same site, another origin) signed the browser in as the
  attacker's account: the sign-in's Origin check let in any local origin, and the form had no token.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect
from starlette.types import Receive, Scope, Send

from tests.harness import Running, serve, serve_asgi, settings_for
from tests.identity import make_user

pytestmark = [pytest.mark.anyio, pytest.mark.database_free]
ADMIN, PASSWORD = "admin@example.com", "correct horse battery staple"
VIEWER = "viewer@example.com"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Running]:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/bastion.db", admin_email=ADMIN, admin_password=PASSWORD)
    async with serve(settings) as running:
        await make_user(running, VIEWER, "viewer")
        yield running


def page_app(html: str):  # type: ignore[no-untyped-def]
    """An ASGI app answering every GET with `html`: another origin's page."""

    async def app(scope: Scope, _receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": html.encode()})

    return app


async def signed_in(browser: Browser, base: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(10_000)
    await page.goto(f"{base}/admin/login")
    await page.get_by_label("Email").fill(ADMIN)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{base}/admin")
    return context, page


async def test_a_link_from_another_site_does_not_sign_the_user_out(gateway: Running, browser: Browser) -> None:
    base = gateway.base_url
    context, page = await signed_in(browser, base)
    link = f'<!doctype html><a id="l" href="{base}/admin/catalog">Bastion</a><script>l.click()</script>'
    async with serve_asgi(page_app(link), host="127.0.0.2") as elsewhere:  # another site: another host
        other = await context.new_page()
        cleared: list[str] = []
        other.on("response", lambda r: cleared.extend(
            c for c in r.headers.get("set-cookie", "").split("\n") if c.startswith("bastion_ui=")))
        await other.goto(f"{elsewhere}/")
        # The session cookie is withheld on the cross-site navigation: this tab is asked to sign in ...
        await expect(other).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin%2Fcatalog"))
    assert cleared == []
    # ... and the user's own tab is still signed in.
    await page.goto(f"{base}/admin/tokens")
    await expect(page).to_have_url(f"{base}/admin/tokens")
    await expect(page.locator("header")).to_contain_text(ADMIN)
    await context.close()


async def test_a_page_on_another_local_port_cannot_sign_the_browser_in(gateway: Running, browser: Browser) -> None:
    base = gateway.base_url
    context, page = await signed_in(browser, base)
    form = (f'<!doctype html><form id="f" method="post" action="{base}/admin/login">'
            f'<input name="email" value="{VIEWER}"><input name="password" value="{PASSWORD}">'
            '<input name="next" value="/admin/tokens"></form><script>f.submit()</script>')
    async with serve_asgi(page_app(form)) as elsewhere:  # 127.0.0.1 too: the same site, another origin
        assert elsewhere != base
        other = await context.new_page()
        answered = []
        other.on("response", lambda r: answered.append(r.status) if r.url.startswith(f"{base}/admin/login") else None)
        await other.goto(f"{elsewhere}/")
        await expect(other.get_by_role("alert")).to_contain_text("Sign in from Bastion's own page")
    assert answered == [403]
    await page.goto(f"{base}/admin/tokens")
    await expect(page.locator("header")).to_contain_text(ADMIN)  # still the admin, not the attacker's account
    await context.close()
