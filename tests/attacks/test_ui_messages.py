"""Attack class: content spoofing in the admin UI. A page used to print `?note=` and `?error=` from its
URL as Bastion's own message, so anyone could send an admin a link to a real Bastion page saying
"Your session expired: sign in at https://evil.example". An outcome now travels only in a cookie
Bastion sets after the admin's own form, and is shown once."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.harness import Running, serve, settings_for
from tests.ui_sign_in import sign_in_ui

pytestmark = pytest.mark.anyio
ADMIN, PASSWORD = "admin@example.com", "correct horse battery staple"
SPOOF = "Your session expired: sign in again at evil.example"


@pytest.fixture
async def browser_like(tmp_path: Path) -> AsyncIterator[tuple[Running, httpx2.AsyncClient]]:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", admin_email=ADMIN, admin_password=PASSWORD)
    async with serve(settings) as running, httpx2.AsyncClient(base_url=running.base_url, timeout=30) as http:
        signed = await sign_in_ui(http, ADMIN, PASSWORD)
        assert signed.status_code == 303, signed.text
        yield running, http


async def test_a_message_in_the_url_is_never_shown(browser_like: tuple[Running, httpx2.AsyncClient]) -> None:
    _, http = browser_like
    for page in ("/admin", "/admin/tokens", "/admin/upstreams", "/admin/login"):
        html = (await http.get(page, params={"note": SPOOF, "error": SPOOF})).text
        assert SPOOF not in html, page


async def test_a_forms_outcome_is_shown_once_on_the_next_page(browser_like: tuple[Running, httpx2.AsyncClient]) -> None:
    running, http = browser_like
    created = await running.api.post("/api/v1/tokens", json={"name": "ci", "servers": "*"})
    assert created.status_code == 201, created.text
    page = (await http.get("/admin/tokens")).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    revoked = await http.post(f"/admin/tokens/{created.json()['id']}/revoke", data={"csrf": csrf.group(1)})
    assert revoked.status_code == 303 and "note" not in revoked.headers["location"]
    shown = (await http.get(revoked.headers["location"])).text
    assert 'role="status">Revoked<' in shown
    assert 'role="status">Revoked<' not in (await http.get("/admin/tokens")).text  # once
