"""Attack class: login CSRF. Another site's form posting the attacker's email and password to
/admin/login used to get a session cookie set in the victim's browser (a response to a cross-site
top-level POST may set even a SameSite=Strict cookie): the victim then worked in the attacker's
account, where what they register or connect is the attacker's to see. A sign-in from another
Origin is refused and sets no cookie; our own page still signs in.

The Origin check then still let in every http(s)://localhost, 127.0.0.1 and [::1] origin on any port
(the MCP endpoint's allowance for local clients), even with a public URL set: a page on another local
port signed the browser in. Only Bastion's own origin is ours now, and the sign-in form carries a CSRF
token that must match a short-lived cookie set with the form."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.harness import Running, serve, settings_for
from tests.ui_sign_in import form_token, set_cookies, sign_in_ui

pytestmark = pytest.mark.anyio
ADMIN, PASSWORD = "admin@example.com", "correct horse battery staple"
FORM = {"email": ADMIN, "password": PASSWORD, "next": "/admin"}


@pytest.fixture
async def gateway_ui(tmp_path: Path) -> AsyncIterator[tuple[Running, httpx2.AsyncClient]]:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", admin_email=ADMIN, admin_password=PASSWORD)
    async with serve(settings) as running, httpx2.AsyncClient(base_url=running.base_url, timeout=30) as http:
        yield running, http


def _signed_in(response: httpx2.Response, prefix: str = "") -> bool:
    return f"{prefix}bastion_ui=bss_" in ", ".join(response.headers.get_list("set-cookie"))


async def _token(http: httpx2.AsyncClient) -> str:
    return form_token((await http.get("/admin/login")).text)


async def test_a_sign_in_posted_from_another_site_is_refused(gateway_ui: tuple[Running, httpx2.AsyncClient]) -> None:
    _, http = gateway_ui
    response = await http.post("/admin/login", data={**FORM, "csrf": await _token(http)}, headers={"origin": "https://evil.example"})
    assert response.status_code == 403
    assert not _signed_in(response)


@pytest.mark.parametrize("origin", ["http://localhost:1", "http://127.0.0.1:9", "http://[::1]:8080", "https://localhost", "null"])
async def test_a_sign_in_from_another_local_origin_is_refused(
    gateway_ui: tuple[Running, httpx2.AsyncClient], origin: str
) -> None:
    _, http = gateway_ui
    response = await http.post("/admin/login", data={**FORM, "csrf": await _token(http)}, headers={"origin": origin})
    assert response.status_code == 403, response.text
    assert not _signed_in(response)


async def test_with_a_public_url_only_its_origin_signs_in(tmp_path: Path) -> None:
    public = "https://bastion.example.com"
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", admin_email=ADMIN, admin_password=PASSWORD, public_url=public)
    async with serve(settings) as running, httpx2.AsyncClient(base_url=running.base_url, timeout=30) as http:
        # The cookies are Secure (the public URL is https): this client sends them back as a browser at it would.
        page = await http.get("/admin/login")
        csrf, cookie = form_token(page.text), page.cookies["__Host-bastion_login_csrf"]
        headers = {"cookie": f"__Host-bastion_login_csrf={cookie}"}
        for origin in (running.base_url, "http://localhost:7", "https://bastion.example.com:8443"):
            refused = await http.post("/admin/login", data={**FORM, "csrf": csrf}, headers={**headers, "origin": origin})
            assert refused.status_code == 403 and not _signed_in(refused, "__Host-"), origin
        signed = await http.post("/admin/login", data={**FORM, "csrf": csrf}, headers={**headers, "origin": public})
        assert signed.status_code == 303 and _signed_in(signed, "__Host-"), signed.text


@pytest.mark.parametrize("case", ["no-token", "no-cookie", "other-token", "forged"])
async def test_a_sign_in_without_the_forms_token_is_refused(gateway_ui: tuple[Running, httpx2.AsyncClient], case: str) -> None:
    running, http = gateway_ui
    csrf = await _token(http)
    if case == "no-cookie":
        http.cookies.clear()
    elif case == "other-token":
        async with httpx2.AsyncClient(base_url=running.base_url, timeout=30) as other:
            csrf = await _token(other)  # a real token, of another browser's cookie
    elif case == "forged":
        stamp, _, _mac = csrf.rpartition(".")
        csrf = f"{stamp}.{'0' * 64}"
        http.cookies.set("bastion_login_csrf", csrf, path="/admin/login")
    data = FORM if case == "no-token" else {**FORM, "csrf": csrf}
    response = await http.post("/admin/login", data=data, headers={"origin": running.base_url})
    assert response.status_code == 403, response.text
    assert not _signed_in(response)
    assert "This sign-in form has expired" in response.text
    again = await http.post("/admin/login", data={**FORM, "csrf": form_token(response.text)}, headers={"origin": running.base_url})
    assert again.status_code == 303 and _signed_in(again), again.text  # the refusal's page signs in


@pytest.mark.parametrize("origin", [None, "same"], ids=["no-origin", "our-origin"])
async def test_a_sign_in_from_our_own_page_still_works(gateway_ui: tuple[Running, httpx2.AsyncClient], origin: str | None) -> None:
    running, http = gateway_ui
    headers = {"origin": running.base_url} if origin == "same" else {}
    response = await sign_in_ui(http, ADMIN, PASSWORD, **headers)
    assert response.status_code == 303, response.text
    assert _signed_in(response)
    assert 'bastion_login_csrf=""' in ", ".join(response.headers.get_list("set-cookie"))  # used up


async def test_a_repeated_csrf_field_is_refused(gateway_ui: tuple[Running, httpx2.AsyncClient]) -> None:
    running, http = gateway_ui
    csrf = await _token(http)
    body = f"email={ADMIN}&password={PASSWORD.replace(' ', '+')}&csrf=bad&csrf={csrf}".encode()
    response = await http.post("/admin/login", content=body, headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400 and not _signed_in(response)
    assert "more than once" in response.text


async def test_over_https_the_sign_in_and_session_cookies_are_host_cookies(tmp_path: Path) -> None:
    """With an https public URL the sign-in form's cookie and the session cookie were plain names for
    /admin/login and /admin: a sibling subdomain (or this host over plain http) could set its own
    `bastion_ui` (the attacker's session) or sign-in token in the browser. They are `__Host-` cookies
    there now (Secure, Path=/, no Domain), which only this host over https can set, and only those
    names are read."""
    public = "https://bastion.example.com"
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", admin_email=ADMIN, admin_password=PASSWORD, public_url=public)
    async with serve(settings) as running, httpx2.AsyncClient(base_url=running.base_url, timeout=30) as http:
        # The cookies are Secure: sent back by hand, as a browser at the https address would.
        page = await http.get("/admin/login")
        login = set_cookies(page)["__Host-bastion_login_csrf"]
        assert "secure" in login and login["path"] == "/" and "domain" not in login and "httponly" in login
        csrf = form_token(page.text)
        plain = {"cookie": f"bastion_login_csrf={login['']}", "origin": public}
        refused = await http.post("/admin/login", data={**FORM, "csrf": csrf}, headers=plain)
        assert refused.status_code == 403 and not _signed_in(refused), refused.text
        headers = {"cookie": f"__Host-bastion_login_csrf={login['']}", "origin": public}
        signed = await http.post("/admin/login", data={**FORM, "csrf": csrf}, headers=headers)
        assert signed.status_code == 303, signed.text
        cookies = set_cookies(signed)
        session = cookies["__Host-bastion_ui"]
        assert session[""].startswith("bss_") and "bastion_ui" not in cookies
        assert "secure" in session and session["path"] == "/" and "domain" not in session
        assert cookies["__Host-bastion_login_csrf"][""] in ("", '""')  # used up
        shown = await http.get("/admin", headers={"cookie": f"__Host-bastion_ui={session['']}"})
        assert shown.status_code == 200 and ADMIN in shown.text, shown.text
        ignored = await http.get("/admin", headers={"cookie": f"bastion_ui={session['']}"})
        assert ignored.status_code == 303 and ignored.headers["location"].startswith("/admin/login")
        own = {"cookie": f"__Host-bastion_ui={session['']}", "origin": public}
        out = await http.post("/admin/logout", data={"csrf": form_token(shown.text)}, headers=own)
        assert out.status_code == 303, out.text
        gone = set_cookies(out)["__Host-bastion_ui"]
        assert gone[""] in ("", '""') and gone["path"] == "/" and "secure" in gone


async def test_over_http_the_sign_in_and_session_cookies_keep_plain_names(gateway_ui: tuple[Running, httpx2.AsyncClient]) -> None:
    """Browsers refuse a `__Host-` cookie that is not Secure: over http (local use) the names are plain."""
    _, http = gateway_ui
    page = await http.get("/admin/login")
    login = set_cookies(page)["bastion_login_csrf"]
    assert "secure" not in login and login["path"] == "/admin/login"
    signed = await sign_in_ui(http, ADMIN, PASSWORD)
    assert signed.status_code == 303, signed.text
    session = set_cookies(signed)["bastion_ui"]
    assert "secure" not in session and session["path"] == "/admin"
    assert not any(name.startswith("__Host-") for name in http.cookies)
    assert (await http.get("/admin")).status_code == 200
