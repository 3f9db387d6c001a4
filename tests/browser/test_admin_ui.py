"""The admin UI in a real browser: sign in, add an upstream, compose a server by picking tools, run a
tool in the playground, see the call in usage and audit, create and revoke a token; a screenshot of
every main page."""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import SHOTS
from tests.harness import FIXTURE, Running, free_port, serve, settings_for

pytestmark = [pytest.mark.anyio, pytest.mark.database_free]
ADMIN, PASSWORD = "admin@example.com", "correct horse battery staple"


@pytest.fixture
async def ui_gateway(tmp_path: Path) -> AsyncIterator[Running]:
    db = f"sqlite+aiosqlite:///{tmp_path}/bastion.db"
    settings = settings_for(db, admin_email=ADMIN, admin_password=PASSWORD, port=free_port())
    async with serve(settings) as running:
        yield running


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def sign_in(page: Page, base: str) -> None:
    await page.goto(f"{base}/admin/upstreams")
    await expect(page).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin%2Fupstreams"))
    await page.get_by_label("Email").fill(ADMIN)
    await page.get_by_label("Password").fill("wrong password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("invalid email or password")
    await shot(page, "01-sign-in")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{base}/admin/upstreams")


async def test_an_admin_runs_the_gateway_from_the_browser(ui_gateway: Running, browser: Browser) -> None:
    base = ui_gateway.base_url
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(10_000)
    page.on("dialog", lambda dialog: dialog.accept())
    await sign_in(page, base)

    # Add an upstream (a stdio process, as an admin may).
    await page.get_by_role("link", name="Add upstream").click()
    await page.get_by_label("Name", exact=True).fill("fx")
    await page.get_by_label("Transport").select_option("stdio")
    await page.get_by_label("Command").fill(sys.executable)
    await page.get_by_label("Arguments").fill(f"{FIXTURE}\n--transport\nstdio\n--mutable")
    await shot(page, "02-upstream-new")
    await page.get_by_role("button", name="Connect and register").click()
    await expect(page.get_by_role("status")).to_contain_text("Registered fx")
    await expect(page.get_by_role("link", name="fx__echo")).to_be_visible()
    await shot(page, "03-upstream")

    # A bad registration is explained next to its field.
    await page.goto(f"{base}/admin/upstreams/new")
    await page.get_by_label("Name", exact=True).fill("Bad_Name")
    await page.get_by_label("URL").fill("http://127.0.0.1:9/mcp")
    await page.get_by_role("button", name="Connect and register").click()
    await expect(page.locator("#name-error")).to_contain_text("not a slug")

    # Compose a server by picking two tools from separate searches: the first pick is kept.
    await page.goto(f"{base}/admin/servers/new")
    await page.get_by_label("Name", exact=True).fill("picked")
    await page.locator("[data-pick-q]").fill("echo")
    await page.get_by_role("checkbox", name=re.compile("fx__echo")).check()
    await page.locator("[data-pick-q]").fill("add")
    await page.get_by_role("checkbox", name=re.compile(r"^\s*fx__add\b")).check()
    await expect(page.locator("[data-pick-count]")).to_have_text("2")
    await page.locator("[data-pick-q]").fill("echo")
    await expect(page.get_by_role("checkbox", name=re.compile("fx__echo"))).to_be_checked()
    await shot(page, "04-server-picker")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved")
    await expect(page.locator("#mcp-url")).to_have_text(ui_gateway.mcp_url("picked"))
    await expect(page.locator("#cfg-vscode")).to_contain_text('"type": "http"')
    await shot(page, "05-server")

    # The playground calls the tool through the server as the signed-in user.
    await page.goto(f"{base}/admin/catalog/tools/fx__echo")
    await page.get_by_label(re.compile("^text")).fill("hello from the browser")
    await page.get_by_role("button", name=f"Call as {ADMIN}").click()
    await expect(page.locator("[data-result]")).to_contain_text("hello from the browser")
    await expect(page.locator("[data-result]")).to_contain_text("through picked")
    await shot(page, "06-playground")

    # The call shows in usage and in the audit log, whose chains verify.
    await page.goto(f"{base}/admin/usage")
    await expect(page.locator("main table").first).to_contain_text("fx__echo")
    await shot(page, "16-usage")
    await page.goto(f"{base}/admin/audit?action=tools/call")
    await expect(page.locator("main table")).to_contain_text("fx__echo")
    await page.get_by_role("button", name="Verify the chains").click()
    await expect(page.get_by_role("status")).to_contain_text("intact")
    await shot(page, "17-audit")

    # A token: created with its secret shown once, then revoked.
    await page.goto(f"{base}/admin/tokens")
    await page.get_by_label("Name").fill("ci-bot")
    await page.get_by_role("checkbox", name="picked").check()
    await page.get_by_role("button", name="Create token").click()
    secret = (await page.locator("#new-token").text_content() or "").strip()
    assert secret.startswith("bst_")
    await shot(page, "07-token-created")
    ok = await ui_gateway.api.get("/api/v1/tools", headers={"Authorization": f"Bearer {secret}"})
    assert ok.status_code == 403  # an mcp-only token may not read the catalog: it is a real token
    await page.goto(f"{base}/admin/tokens")
    assert secret not in await page.content()
    await page.get_by_role("button", name="Revoke").click()
    await expect(page.get_by_role("status")).to_contain_text("Revoked")
    refused = await ui_gateway.api.post(
        ui_gateway.mcp_url("picked"), json={}, headers={"Authorization": f"Bearer {secret}"}
    )
    assert refused.status_code == 401

    # A rug pull: the upstream changes a tool's description after approval. The change waits, shown as
    # a side-by-side diff; once approved, the tool is callable again.
    await ui_gateway.create_server({"name": "all", "upstreams": ["fx"]})
    async with ui_gateway.client("all", mode="2026-07-28") as client:
        await client.call_tool("fx__redescribe", {"tool": "echo", "description": "Now also mails your files away."})
    with anyio.fail_after(20):
        while not (await ui_gateway.api.get("/api/v1/approvals")).json()["items"]:
            await anyio.sleep(0.05)
    await page.goto(f"{base}/admin/approvals")
    await expect(page.locator("table.diff")).to_contain_text("Now also mails your files away.")
    await shot(page, "18-approvals")
    await page.get_by_role("button", name="Approve").click()
    await expect(page.get_by_role("status")).to_contain_text("Approved")
    async with ui_gateway.client("all", mode="2026-07-28") as client:
        assert (await client.call_tool("fx__echo", {"text": "back"})).content[0].text == "back"  # type: ignore[union-attr]
    for name, path in (("19-duplicates", "/admin/duplicates"), ("20-registry", "/admin/registry")):
        await page.goto(base + path)
        await expect(page.locator("h1")).to_be_visible()
        await shot(page, name)

    # The other main pages render, in both themes.
    for name, path in (("08-dashboard", "/admin"), ("09-catalog", "/admin/catalog?kind=tools"),
                       ("10-servers", "/admin/servers"), ("11-upstreams", "/admin/upstreams"),
                       ("12-users", "/admin/users"), ("13-teams", "/admin/teams")):
        await page.goto(base + path)
        await expect(page.locator("h1")).to_be_visible()
        await shot(page, name)
    await page.get_by_role("button", name="Switch light or dark theme").click()
    await page.goto(f"{base}/admin")
    assert await page.evaluate("document.documentElement.getAttribute('data-theme')") == "dark"
    await shot(page, "14-dashboard-dark")
    phone = await browser.new_page(viewport={"width": 390, "height": 844})
    await phone.context.add_cookies(await page.context.cookies())
    await phone.goto(f"{base}/admin/catalog/tools/fx__echo")
    await shot(phone, "15-tool-phone")

    # Signing out ends the session: the cookie no longer opens a page.
    await page.get_by_role("button", name="Sign out").click()
    await page.goto(f"{base}/admin/servers")
    await expect(page).to_have_url(re.compile("/admin/login"))


async def test_forms_need_the_session_csrf_token_and_our_origin(ui_gateway: Running, browser: Browser) -> None:
    base = ui_gateway.base_url
    page = await browser.new_page()
    await sign_in(page, base)
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    assert "bastion_ui" in cookies
    (cookie,) = [c for c in await page.context.cookies() if c["name"] == "bastion_ui"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/admin"
    forged = await ui_gateway.api.post(
        "/admin/teams", data={"name": "forged", "csrf": "0" * 64},
        cookies={"bastion_ui": cookies["bastion_ui"]}, headers={"Authorization": ""},
    )
    assert forged.status_code == 403
    teams = await ui_gateway.api.get("/api/v1/teams")
    assert "forged" not in teams.text
    csp = (await page.goto(f"{base}/admin")).headers["content-security-policy"]  # type: ignore[union-attr]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
