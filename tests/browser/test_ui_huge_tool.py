"""Attack class: a huge tool makes a huge page. An upstream writes its tools' input schemas, and a tool's
page drew one form field per property (100,000 properties: a 41 MB page and 10 s of rendering in the
event loop, while the whole gateway stood still), every choice of an enum, and the whole schema twice.
The form now shows the arguments that fit, with a note to give the rest as JSON (the box opens); the
schema and the definition are shortened, saying where the whole of them is. A description of megabytes
was shown whole, on the tool's page and in every list that has the tool; it is cut, saying how much.
The server form's item picker (drawn by script, from JSON) showed descriptions as they are: written
out there too."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from tests.browser.test_ui_attacks import ADMIN, PASSWORD, signed_in
from tests.harness import Running, free_port, serve, settings_for
from tests.upstreams import hostile_server

pytestmark = [pytest.mark.anyio, pytest.mark.database_free]
WIDE, CHOICES, DEPTH = 20_000, 20_000, 30
TAGS = "".join(chr(0xE0000 + ord(c)) for c in "hi")


def tools() -> list[dict[str, Any]]:
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": f"field {i}"} for i in range(WIDE)}}
    deep: dict[str, Any] = {"type": "string"}
    for level in range(DEPTH):
        deep = {"type": "object", "properties": {f"level{level}": deep}}
    choices = {"type": "object", "properties": {"choice": {"enum": [f"v{i}" for i in range(CHOICES)]}}}
    wordy = {"type": "object", "properties": {"a": {"type": "string", "description": "Argument. " * 100_000}}}
    return [{"name": "wide", "description": "Many arguments.", "inputSchema": wide},
            {"name": "deep", "inputSchema": deep}, {"name": "choices", "inputSchema": choices},
            {"name": "wordy", "description": "Words. " * 300_000, "inputSchema": wordy},
            {"name": "tagged", "description": "Adds numbers." + TAGS, "inputSchema": {"type": "object"}}]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("ui-huge")
    listed = tmp / "tools.json"
    listed.write_text(json.dumps(tools()))
    settings = settings_for(f"sqlite+aiosqlite:///{tmp}/b.db", admin_email=ADMIN, admin_password=PASSWORD, port=free_port())
    async with serve(settings) as running:
        await running.register({"name": "big", "transport": "stdio", "command": sys.executable,
                                "args": [hostile_server.__file__, "--tools", str(listed)]})
        await running.create_server({"name": "vs", "upstreams": ["big"]})
        yield running


async def test_a_tool_with_a_huge_input_schema_has_a_page_of_ordinary_size(gateway: Running, browser: Browser) -> None:
    page, problems = await signed_in(browser, gateway.base_url)
    response = await page.goto(f"{gateway.base_url}/admin/catalog/tools/big__wide")
    assert response is not None and response.status == 200
    assert len(await response.body()) < 1_000_000
    fields = page.locator('form[data-playground] [name^="arg:"]')
    assert 1 <= await fields.count() <= 200
    await expect(page.locator("form[data-playground]")).to_contain_text(f"{WIDE - await fields.count():,} more arguments")
    await expect(page.get_by_label("Arguments as JSON")).to_be_visible()  # open: the way to give the rest
    schema = await page.locator("details:has(> summary:text-is('Input schema')) > pre").text_content() or ""
    assert '"p0"' in schema and f'"p{WIDE - 1}"' not in schema and "more properties" in schema
    await expect(page.locator("main")).to_contain_text("/api/v1/tools/big__wide")
    # The rest of the arguments, as JSON: the call goes through with them.
    await page.get_by_label("Arguments as JSON").fill(json.dumps({f"p{WIDE - 1}": "last"}))
    await page.get_by_role("button", name=f"Call as {ADMIN}").click()
    await expect(page.locator("[data-result]")).to_contain_text("through vs")

    response = await page.goto(f"{gateway.base_url}/admin/catalog/tools/big__choices")
    assert response is not None and response.status == 200 and len(await response.body()) < 1_000_000
    assert await page.locator("form[data-playground] option").count() <= 1_000
    response = await page.goto(f"{gateway.base_url}/admin/catalog/tools/big__deep")
    assert response is not None and response.status == 200
    schema = await page.locator("details:has(> summary:text-is('Input schema')) > pre").text_content() or ""
    assert '"level29"' in schema and '"level0"' not in schema  # the outermost levels, then a note
    assert problems == []


async def test_a_tool_with_a_huge_description_has_pages_of_ordinary_size(gateway: Running, browser: Browser) -> None:
    page, problems = await signed_in(browser, gateway.base_url)
    for path in ("/admin/catalog?kind=tools&upstream=big", "/admin/upstreams/big", "/admin/catalog/tools/big__wordy"):
        response = await page.goto(gateway.base_url + path)
        assert response is not None and response.status == 200, path
        assert len(await response.body()) < 500_000, path
    await expect(page.locator("main > p").first).to_contain_text("more characters not shown here")
    await expect(page.locator("form[data-playground] p.help")).to_contain_text("Argument. Argument.")
    assert problems == []


async def test_the_item_picker_writes_out_what_a_browser_hides(gateway: Running, browser: Browser) -> None:
    page, problems = await signed_in(browser, gateway.base_url)
    await page.goto(f"{gateway.base_url}/admin/servers/new")
    await page.locator("[data-pick-q]").fill("tagged")
    picked = page.locator("[data-pick-results] li").filter(has_text="big__tagged")
    await expect(picked).to_contain_text("Adds numbers.\\udb40\\udc68\\udb40\\udc69")
    assert problems == []
