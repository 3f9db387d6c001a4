"""Attack class: login CSRF. Another site's form posting the attacker's email and password to
/admin/login used to get a session cookie set in the victim's browser (a response to a cross-site
top-level POST may set even a SameSite=Strict cookie): the victim then worked in the attacker's
account, where what they register or connect is the attacker's to see. A sign-in from another
Origin is refused and sets no cookie; our own page still signs in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.harness import Running, serve, settings_for

pytestmark = pytest.mark.anyio
ADMIN, PASSWORD = "admin@example.com", "correct horse battery staple"
FORM = {"email": ADMIN, "password": PASSWORD, "next": "/admin"}


@pytest.fixture
async def gateway_ui(tmp_path: Path) -> AsyncIterator[tuple[Running, httpx2.AsyncClient]]:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", admin_email=ADMIN, admin_password=PASSWORD)
    async with serve(settings) as running, httpx2.AsyncClient(base_url=running.base_url, timeout=30) as http:
        yield running, http


async def test_a_sign_in_posted_from_another_site_is_refused(gateway_ui: tuple[Running, httpx2.AsyncClient]) -> None:
    _, http = gateway_ui
    response = await http.post("/admin/login", data=FORM, headers={"origin": "https://evil.example"})
    assert response.status_code == 403
    assert "set-cookie" not in response.headers or "bastion_ui=bss_" not in response.headers["set-cookie"]


@pytest.mark.parametrize("origin", [None, "same"], ids=["no-origin", "our-origin"])
async def test_a_sign_in_from_our_own_page_still_works(gateway_ui: tuple[Running, httpx2.AsyncClient], origin: str | None) -> None:
    running, http = gateway_ui
    headers = {"origin": running.base_url} if origin == "same" else {}
    response = await http.post("/admin/login", data=FORM, headers=headers)
    assert response.status_code == 303, response.text
    assert "bastion_ui=bss_" in response.headers["set-cookie"]
