"""The reference server `@modelcontextprotocol/server-everything` over stdio behind Bastion, in both eras."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import EVERYTHING, Running, serve, settings_for

pytestmark = [pytest.mark.anyio, pytest.mark.node]

MODES = ["legacy", "2026-07-28"]
TINY_IMAGE_JS = EVERYTHING.parent / "tools" / "get-tiny-image.js"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def everything(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    """A Bastion with server-everything registered as `ev` behind the virtual server `ev`."""
    if not EVERYTHING.exists():
        pytest.fail(f"{EVERYTHING} is missing: run scripts/install-node-tools first")
    db = Path(tmp_path_factory.mktemp("everything")) / "bastion.db"
    async with serve(settings_for(f"sqlite+aiosqlite:///{db}")) as gateway:
        await gateway.register({"name": "ev", "transport": "stdio", "command": "node", "args": [str(EVERYTHING), "stdio"]})
        await gateway.create_server({"name": "ev", "upstreams": ["ev"]})
        yield gateway


@pytest.mark.parametrize("mode", MODES)
async def test_everything_tools_are_listed_with_prefix(everything: Running, mode: str) -> None:
    async with everything.client("ev", mode=mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert {"ev__echo", "ev__get-structured-content", "ev__get-tiny-image", "ev__get-sum"} <= names
    assert all(name.startswith("ev__") for name in names)


@pytest.mark.parametrize("mode", MODES)
async def test_everything_echo(everything: Running, mode: str) -> None:
    async with everything.client("ev", mode=mode) as client:
        result = await client.call_tool("ev__echo", {"message": "hello ✓"})
    assert result.is_error is not True
    assert [(c.type, c.text) for c in result.content] == [("text", "Echo: hello ✓")]


@pytest.mark.parametrize("mode", MODES)
async def test_everything_structured_content_round_trips(everything: Running, mode: str) -> None:
    async with everything.client("ev", mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        result = await client.call_tool("ev__get-structured-content", {"location": "Chicago"})
    expected = {"temperature": 36, "conditions": "Light rain / drizzle", "humidity": 82}
    assert tools["ev__get-structured-content"].output_schema is not None
    assert set(tools["ev__get-structured-content"].output_schema["properties"]) == set(expected)
    assert result.is_error is not True
    assert result.structured_content == expected


@pytest.mark.parametrize("mode", MODES)
async def test_everything_image_content_round_trips(everything: Running, mode: str) -> None:
    match = re.search(r'MCP_TINY_IMAGE = "([A-Za-z0-9+/=]+)"', TINY_IMAGE_JS.read_text())
    assert match is not None, f"no MCP_TINY_IMAGE in {TINY_IMAGE_JS}"
    async with everything.client("ev", mode=mode) as client:
        result = await client.call_tool("ev__get-tiny-image", {})
    images = [c for c in result.content if c.type == "image"]
    assert len(images) == 1
    assert images[0].mime_type == "image/png"
    assert images[0].data == match.group(1)
    assert base64.b64decode(images[0].data).startswith(b"\x89PNG\r\n\x1a\n")
