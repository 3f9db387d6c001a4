"""Attack class: an OAuth client's self-chosen name spoofs the consent page. Anyone may register a
client, and its name is shown to the person asked to allow it. A name with bidi controls read as
something else ("Good \\u202eknaB" as "Good Bank"), and the unclosed RLO reversed the warning after it
too ("(unverified: the name it gave itself)" read backwards). The name's hidden characters are now
written out, and the name is isolated (<bdi>) from the text around it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.auth.oauth_client import Pkce, authorize_url, register, serve_public
from tests.harness import Running, stdio_fixture

pytestmark = [pytest.mark.anyio, pytest.mark.database_free]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db") as running:
        await running.register(stdio_fixture("fx"))
        await running.create_server({"name": "vs1", "upstreams": ["fx"], "visibility": "public"})
        yield running


async def test_a_clients_name_cannot_reorder_or_hide_what_the_consent_page_says(gateway: Running) -> None:
    tagged = "".join(chr(0xE0000 + ord(c)) for c in "ok")  # drawn as nothing
    client = await register(gateway, client_name=f"Good \u202eknaB{tagged}")
    async with httpx2.AsyncClient(timeout=30) as http:
        started = await http.get(authorize_url(gateway, client, "vs1", Pkce()))
        page = (await http.get(started.headers["location"])).text
    assert "\u202e" not in page and tagged not in page
    assert "<bdi>Good \\u202eknaB\\udb40\\udc6f\\udb40\\udc6b</bdi> <small>(unverified: the name it gave itself)" in page
