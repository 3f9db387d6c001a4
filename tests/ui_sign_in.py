"""Signing in to the admin UI as a browser does: the sign-in page first (its form's CSRF token and the
cookie it must match), then the form."""

from __future__ import annotations

import re

import httpx2

_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def form_token(html: str) -> str:
    """The CSRF token of the (first) form on a page."""
    found = _TOKEN.search(html)
    assert found is not None, html[-2000:]
    return found.group(1)


async def sign_in_ui(
    http: httpx2.AsyncClient, email: str, password: str, next_page: str = "/admin", *, base: str = "", **headers: str
) -> httpx2.Response:
    """POST the sign-in form the way its page does (`http` keeps cookies); the answer (303 when signed in)."""
    page = await http.get(f"{base}/admin/login", headers=headers)
    data = {"email": email, "password": password, "next": next_page}
    if (found := _TOKEN.search(page.text)) is not None:
        data["csrf"] = found.group(1)
    return await http.post(f"{base}/admin/login", data=data, headers=headers)


def set_cookies(response: httpx2.Response) -> dict[str, dict[str, str]]:
    """The cookies a response sets, by name: their value (under "") and attributes (lower-cased names)."""
    found: dict[str, dict[str, str]] = {}
    for header in response.headers.get_list("set-cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        found[name] = {"": value, **{k.lower(): v for k, _, v in (a.partition("=") for a in attributes)}}
    return found
