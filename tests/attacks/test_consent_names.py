"""Attack class: an OAuth client's self-chosen name spoofs the consent page. Anyone may register a
client, and its name is shown to the person asked to allow it. A name with bidi controls read as
something else ("Good \\u202eknaB" as "Good Bank"), and the unclosed RLO reversed the warning after it
too ("(unverified: the name it gave itself)" read backwards). The name's hidden characters are now
written out, and the name is isolated (<bdi>) from the text around it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx2
import pytest

from tests.auth.oauth_client import REDIRECT_URI, Pkce, authorize_url, register, serve_public
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


@pytest.mark.parametrize(
    ("redirect_uri", "target"),
    [
        ("evil://login.microsoftonline.com/cb", "the application registered for evil:"),
        ("com.evil.app://127.0.0.1/oauth/callback", "the application registered for com.evil.app:"),
        ("https://app.example/cb", "app.example"),
    ],
)
async def test_the_consent_page_names_a_native_apps_scheme_not_the_host_in_its_uri(
    gateway: Running, redirect_uri: str, target: str
) -> None:
    """A native app's redirect URI (its own scheme) goes to whatever app claims that scheme; the
    "host" in it is text of the client's choosing. The page said "Your authorization goes to
    login.microsoftonline.com" for evil://login.microsoftonline.com/cb."""
    client = await register(gateway, redirect_uris=[redirect_uri])
    url = authorize_url(gateway, client, "vs1", Pkce())
    url = url.replace(urlencode({"redirect_uri": REDIRECT_URI}), urlencode({"redirect_uri": redirect_uri}))
    async with httpx2.AsyncClient(timeout=30) as http:
        started = await http.get(url)
        assert started.status_code == 302, started.text
        page = (await http.get(started.headers["location"])).text
    said = re.search(r"<dt>Your authorization goes to</dt><dd><strong>(.*?)</strong>", page)
    assert said is not None and said.group(1) == target
