"""Attack class: admin UI cookies no browser of ours sets. A flash cookie nesting 2000 levels made
`json.loads` raise RecursionError, one holding a lone surrogate broke the page's encoding, and a
session cookie with a non-ASCII character made the internal HTTP client fail to build its
Authorization header: each was a 500 on an admin page. A flash that cannot be read is no flash; a
session cookie that cannot be a token is no session (sign in)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.harness import Running, serve, settings_for
from tests.ui_sign_in import sign_in_ui

pytestmark = pytest.mark.anyio
ADMIN, PASSWORD = "admin@example.com", "correct horse battery staple"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("ui-cookies")
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp}/b.db", admin_email=ADMIN, admin_password=PASSWORD)) as running:
        yield running


async def _get(gateway: Running, path: str, cookie: bytes) -> httpx2.Response:
    """GET `path` with a Cookie header sent as these very bytes (no cookie jar in between)."""
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        return await http.get(path, headers={"cookie": cookie})


@pytest.mark.parametrize("flash", ["[" * 2000, '{"note": "\\ud800"}'], ids=["deep", "surrogate"])
async def test_a_flash_cookie_that_cannot_be_read_is_no_flash(gateway: Running, flash: str) -> None:
    value = base64.urlsafe_b64encode(flash.encode()).decode()
    response = await _get(gateway, "/admin/login", f"bastion_flash={value}".encode())
    assert response.status_code == 200, response.text
    assert 'role="status"' not in response.text and 'role="alert"' not in response.text


async def test_a_readable_flash_cookie_is_still_shown(gateway: Running) -> None:
    value = base64.urlsafe_b64encode(b'{"note": "Saved"}').decode()
    response = await _get(gateway, "/admin/login", f"bastion_flash={value}".encode())
    assert response.status_code == 200 and ">Saved<" in response.text, response.text


@pytest.mark.parametrize("page", ["/admin", "/admin/tokens", "/admin/upstreams"])
@pytest.mark.parametrize("cookie", [b"bss_\xe9", "bss_\u00e9".encode()], ids=["latin-1", "utf-8"])
async def test_a_session_cookie_that_cannot_be_a_token_is_signed_out(gateway: Running, page: str, cookie: bytes) -> None:
    response = await _get(gateway, page, b"bastion_ui=" + cookie)
    assert response.status_code in (302, 303, 307), response.text
    assert response.headers["location"].startswith("/admin/login"), response.headers["location"]


@pytest.mark.parametrize("csrf", ["\u00e9", "x" * 10 + "\u2603"], ids=["latin-1", "snowman"])
async def test_a_form_whose_csrf_field_is_not_ascii_is_refused_not_a_500(gateway: Running, csrf: str) -> None:
    """hmac.compare_digest raises TypeError for a str holding non-ASCII: a signed-in admin's form (or
    a cross-site one riding the session) with such a CSRF field was a 500."""
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        signed = await sign_in_ui(http, ADMIN, PASSWORD)
        assert signed.status_code == 303, signed.text
        created = await gateway.api.post("/api/v1/tokens", json={"name": f"csrf-{len(csrf)}", "servers": "*"})
        assert created.status_code == 201, created.text
        revoked = await http.post(f"/admin/tokens/{created.json()['id']}/revoke", data={"csrf": csrf})
        assert revoked.status_code in (303, 403), revoked.text
        listed = await gateway.api.get("/api/v1/tokens")
        assert all(not t.get("revoked") for t in listed.json()["items"] if t["id"] == created.json()["id"]), listed.text
