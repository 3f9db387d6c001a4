"""Attack class: people's text that a browser draws otherwise than it reads, in an admin's real browser.
A person signing in with the identity provider brings their email as the provider says it, and Bastion
cannot refuse it without locking them out; an API token's name may predate the check that now refuses
hidden characters (tests/attacks/test_people_text_input.py). An email with a RIGHT-TO-LEFT OVERRIDE
read as another address, and zero-width and tag characters were drawn as nothing, on every page that
shows it (the header, users, teams, tokens, the audit log, a server's policy). Each such character is
now written out (\\u202e) wherever the admin UI shows text."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from bastion.auth.tokens import hash_token, new_token
from bastion.core.grants import ApiToken
from tests.auth.fake_oidc import CLIENT_ID, CLIENT_SECRET, FakeProvider
from tests.browser.test_ui_attacks import ADMIN, PASSWORD, signed_in
from tests.harness import Running, free_port, serve, serve_asgi, settings_for, stdio_fixture

pytestmark = [pytest.mark.anyio, pytest.mark.database_free]
TAGS = "".join(chr(0xE0000 + ord(c)) for c in "hi")
EMAIL = f"eve\u202emoc.knab\u202c{TAGS}\u200b@evil.example"
"""Drawn as "evebank.com@evil.example": the override reverses "moc.knab", the rest is drawn as nothing."""
SHOWN = "eve\\u202emoc.knab\\u202c\\udb40\\udc68\\udb40\\udc69\\u200b@evil.example"
TOKEN_NAME, TOKEN_SHOWN = "ci\u202eyolped\u2066", "ci\\u202eyolped\\u2066"
HIDDEN = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\U000e0000-\U000e007f]")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("ui-people")
    idp = FakeProvider(claims={"email": EMAIL, "email_verified": True, "groups": ["t1"], "bastion_role": "developer"})
    async with serve_asgi(idp.app()) as url:
        idp.url = url
        settings = settings_for(
            f"sqlite+aiosqlite:///{tmp}/b.db", admin_email=ADMIN, admin_password=PASSWORD, port=free_port(),
            oidc_issuer=url, oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET, oidc_provider_name="Example ID",
        )
        async with serve(settings) as running:
            await running.register(stdio_fixture("fx"))
            assert (await running.api.post("/api/v1/teams", json={"name": "t1"})).status_code == 201
            yield running


async def no_hidden_text(page: Page) -> str:
    """The page's main text (closed <details> too), once sure that no character a browser hides is
    anywhere in the page."""
    html = await page.content()
    assert not HIDDEN.search(html), (page.url, HIDDEN.findall(html))
    return await page.locator("main").text_content() or ""


async def test_an_identity_providers_email_with_hidden_characters_signs_in_and_is_shown_written_out(
    gateway: Running, browser: Browser
) -> None:
    base = gateway.base_url
    person = await browser.new_page(viewport={"width": 1280, "height": 900})
    person.set_default_timeout(10_000)
    await person.goto(f"{base}/admin/login")
    await person.get_by_role("link", name="Sign in with Example ID").click()
    await expect(person).to_have_url(f"{base}/admin")  # not locked out
    await expect(person.locator("header .who")).to_contain_text(SHOWN)
    await no_hidden_text(person)

    (user,) = [u for u in (await gateway.api.get("/api/v1/users")).json()["items"] if u["email"] != ADMIN]
    assert user["email"] == EMAIL and user["teams"] == ["t1"]  # stored as the provider says it
    # A token whose name predates the check (REST refuses such a name now: tests/attacks/test_people_text_input.py).
    legacy = ApiToken(id="legacy-token", name=TOKEN_NAME, servers=(), permissions=("read",), created_at=datetime.now(UTC),
                      user=user["id"])
    await gateway.bastion.gateway.repo.create_api_token(legacy, hash_token(new_token()))
    await gateway.create_server({"name": "vs", "upstreams": ["fx"],
                                 "policy": {"default": "deny", "rules": [{"effect": "allow", "users": [EMAIL], "tools": ["*"]}]}})
    await person.goto(f"{base}/admin/tokens")
    assert TOKEN_SHOWN in await no_hidden_text(person)

    page, problems = await signed_in(browser, base)
    shown = {}
    for path in ("/admin/users", "/admin/teams", "/admin/tokens", "/admin/audit", "/admin/servers/vs", "/admin"):
        await page.goto(base + path)
        shown[path] = await no_hidden_text(page)
    for path in ("/admin/users", "/admin/teams", "/admin/audit", "/admin/servers/vs"):  # audit: the sign-in's target
        assert SHOWN in shown[path], path
    assert TOKEN_SHOWN in shown["/admin/tokens"]
    assert problems == []
