"""Attack class: malformed input to the admin UI's forms and query strings. Each of these answered 500:
a policy holding NaN or a number past a float (no JSON can carry it to the API), a file part in a form
(not JSON either), a value that grows past the longest URL once Bastion quotes it into its own API
call, and a catalog kind that is not one. Each is now a page or a flash that says what is wrong."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.harness import serve, settings_for
from tests.ui_sign_in import sign_in_ui

pytestmark = pytest.mark.anyio
ADMIN, PASSWORD = "admin@example.com", "correct horse battery staple"


@pytest.fixture
async def signed_in(tmp_path: Path) -> AsyncIterator[tuple[httpx2.AsyncClient, str]]:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", admin_email=ADMIN, admin_password=PASSWORD)
    async with serve(settings) as running, httpx2.AsyncClient(base_url=running.base_url, timeout=30) as http:
        signed = await sign_in_ui(http, ADMIN, PASSWORD)
        assert signed.status_code == 303, signed.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', (await http.get("/admin/tokens")).text)
        assert csrf is not None
        yield http, csrf.group(1)


@pytest.mark.parametrize(("field", "value"), [("policy", "NaN"), ("policy", '{"a": Infinity}'), ("rate_limits", "1e400")])
async def test_a_policy_no_json_can_carry_is_refused_on_the_form(
    signed_in: tuple[httpx2.AsyncClient, str], field: str, value: str
) -> None:
    http, csrf = signed_in
    page = await http.post("/admin/servers/new", data={"csrf": csrf, "name": "vs", field: value})
    assert page.status_code == 400, page.text
    assert "not valid JSON" in page.text


@pytest.mark.parametrize(("path", "field"), [("/admin/tokens", "servers"), ("/admin/tokens", "permissions"),
                                             ("/admin/servers/new", "upstreams")])
async def test_a_file_in_a_form_is_refused(signed_in: tuple[httpx2.AsyncClient, str], path: str, field: str) -> None:
    http, csrf = signed_in
    page = await http.post(path, data={"csrf": csrf, "name": "x"}, files={field: ("a.txt", b"hello", "text/plain")})
    assert page.status_code == 400, page.text
    assert "takes no files" in page.text


async def test_a_value_too_long_for_the_apis_url_is_an_error_not_a_500(signed_in: tuple[httpx2.AsyncClient, str]) -> None:
    http, csrf = signed_in
    # 60 kB as sent, 180 kB once quoted again (each %FF reads as U+FFFD, nine bytes quoted): past httpx's limit
    grown = "%FF" * 20000
    for page in ("/admin/catalog?q=", "/admin/audit?cursor=", "/admin/registry?q=", "/admin/duplicates?upstream=",
                 "/admin/picker?q=", "/admin/registry/x/entry?server="):
        answer = await http.get(page + grown)
        assert answer.status_code < 500, page
    removed = await http.post("/admin/teams/t", data={"csrf": csrf, "action": "remove-member", "user": "\u00e9" * 30000})
    assert removed.status_code == 303 and removed.headers["location"] == "/admin/teams"
    assert "too long" in (await http.get("/admin/teams")).text


async def test_a_catalog_kind_that_is_not_one_is_not_found(signed_in: tuple[httpx2.AsyncClient, str]) -> None:
    http, csrf = signed_in
    for kind in ("%01", "upstreams"):
        page = await http.post(f"/admin/catalog/{kind}/x", data={"csrf": csrf, "action": "enable"})
        assert page.status_code == 404, kind
