"""Attack class: a flow cookie planted by a sibling subdomain. The upstream connect flow's nonce
cookie (`bastion_connect_browser`, the one its callback accepts), its start page's CSRF cookie and the
OAuth consent page's CSRF cookie kept plain names over https: a page on a sibling subdomain could set
`bastion_connect_browser=N; Domain=.example.com` with the nonce N of a flow the attacker started for
their own Bastion user, send the victim to that flow's provider URL, and the callback accepted the
victim's consent as the attacker's flow, linking the victim's provider account to the attacker. Over
https these are `__Host-` cookies now (Secure, Path=/, no Domain), which only this host can set, and
only those names are read; over http (local use) the plain names and paths stay."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx2
import pytest

from tests.auth.oauth_client import Pkce, authorize_url, hidden_fields, register, serve_public
from tests.harness import serve, settings_for, stdio_fixture
from tests.identity import PASSWORD, make_user
from tests.ui_sign_in import set_cookies
from tests.vault.test_upstream_user_oauth import CALLBACK, START, _stored_tokens, provider, setup, start, state_of

pytestmark = pytest.mark.anyio
PUBLIC = "https://bastion.example.com"


def _csrf(page: httpx2.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None, page.text
    return match.group(1)


def _host_cookie(cookie: dict[str, str]) -> bool:
    return "secure" in cookie and cookie["path"] == "/" and "domain" not in cookie and "httponly" in cookie


async def test_over_https_the_connect_flow_cookies_are_host_cookies(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", public_url=PUBLIC)
    async with provider() as (_world, base), serve(settings) as gateway, httpx2.AsyncClient(timeout=60) as http:
        alice = (await setup(gateway, base))["alice"]
        post_to = f"{gateway.base_url}{START}"

        async def signed_in(start_url: str) -> tuple[str, str]:
            """Alice through her own start page (cookies sent by hand, as a browser at the https
            address would): her flow's nonce and the provider's URL."""
            page = await http.get(start_url)
            csrf = set_cookies(page)["__Host-bastion_connect_csrf"]
            assert _host_cookie(csrf) and "bastion_connect_csrf" not in set_cookies(page)
            form = {"state": state_of(start_url), "csrf": _csrf(page), "email": "alice@example.com", "password": PASSWORD}
            plain = await http.post(post_to, data=form, headers={"cookie": f"bastion_connect_csrf={csrf['']}"})
            assert plain.status_code == 403, plain.text  # a plain-named CSRF cookie is not read
            answer = await http.post(post_to, data=form, headers={"cookie": f"__Host-bastion_connect_csrf={csrf['']}"})
            assert answer.status_code == 303, answer.text
            cookies = set_cookies(answer)
            nonce = cookies["__Host-bastion_connect_browser"]
            assert _host_cookie(nonce) and nonce["samesite"].lower() == "lax" and "bastion_connect_browser" not in cookies
            assert cookies["__Host-bastion_connect_csrf"][""] in ("", '""')  # used up
            return nonce[""], answer.headers["location"]

        async def back_from_provider(provider_url: str, account: str) -> str:
            at_provider = await http.get(f"{provider_url}&login_as={account}")
            assert at_provider.status_code == 302, at_provider.text
            return f"{gateway.base_url}{CALLBACK}?{urlsplit(at_provider.headers['location']).query}"

        # The attack: alice's nonce planted under the plain name, bob consents at the provider.
        nonce, provider_url = await signed_in(await start(gateway, alice))
        back = await back_from_provider(provider_url, "bob-gh")
        planted = await http.get(back, headers={"cookie": f"bastion_connect_browser={nonce}"})
        assert planted.status_code in (400, 403), planted.text
        assert await _stored_tokens(gateway) == "[]"

        # Her own browser, with the cookie under its `__Host-` name, finishes her own flow.
        nonce, provider_url = await signed_in(await start(gateway, alice))
        back = await back_from_provider(provider_url, "alice-gh")
        done = await http.get(back, headers={"cookie": f"__Host-bastion_connect_browser={nonce}"})
        assert done.status_code == 200, done.text
        spent = set_cookies(done)["__Host-bastion_connect_browser"]
        assert spent[""] in ("", '""') and spent["path"] == "/" and "secure" in spent
        async with httpx2.AsyncClient(base_url=gateway.base_url, headers={"Authorization": f"Bearer {alice}"}) as api:
            assert (await api.get("/api/v1/upstreams/up/connection")).json()["connected"] is True


async def test_over_http_the_connect_flow_cookies_keep_plain_names(tmp_path: Path) -> None:
    """Browsers refuse a `__Host-` cookie that is not Secure: over http the names and paths are as they were."""
    async with provider() as (_world, base), serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
        alice = (await setup(gateway, base))["alice"]
        start_url = await start(gateway, alice)
        async with httpx2.AsyncClient(timeout=60) as own:
            page = await own.get(start_url)
            csrf = set_cookies(page)["bastion_connect_csrf"]
            assert "secure" not in csrf and csrf["path"] == START
            form = {"state": state_of(start_url), "csrf": _csrf(page), "email": "alice@example.com", "password": PASSWORD}
            answer = await own.post(f"{gateway.base_url}{START}", data=form)
            assert answer.status_code == 303, answer.text
            nonce = set_cookies(answer)["bastion_connect_browser"]
            assert "secure" not in nonce and nonce["path"] == "/oauth/upstream/"
            assert not any(name.startswith("__Host-") for name in own.cookies)


async def test_over_https_the_consent_pages_cookie_is_a_host_cookie(tmp_path: Path) -> None:
    async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db", public_url=PUBLIC) as gateway:
        await gateway.register(stdio_fixture("fx"))
        await gateway.create_server({"name": "vs", "upstreams": ["fx"], "visibility": "public"})
        await make_user(gateway, "dev@example.com", "developer")
        client = await register(gateway)
        url = authorize_url(gateway, client, "vs", Pkce()).replace(quote(gateway.base_url, safe=""), quote(PUBLIC, safe=""))
        async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
            started = await http.get(url)
            assert started.status_code == 302, started.text
            consent = urlsplit(started.headers["location"])
            page = await http.get(f"{consent.path}?{consent.query}")
            assert page.status_code == 200, page.text
            cookie = set_cookies(page)["__Host-bastion_consent_csrf"]
            assert _host_cookie(cookie) and "bastion_consent_csrf" not in set_cookies(page)
            form = {**hidden_fields(page.text), "email": "dev@example.com", "password": PASSWORD, "action": "allow"}
            plain = await http.post(consent.path, data=form, headers={"cookie": f"bastion_consent_csrf={cookie['']}"})
            assert plain.status_code == 403, plain.text
            own = await http.post(consent.path, data=form, headers={"cookie": f"__Host-bastion_consent_csrf={cookie['']}"})
            assert own.status_code == 303, own.text


async def test_over_http_the_consent_pages_cookie_keeps_its_plain_name(tmp_path: Path) -> None:
    async with serve_public(f"sqlite+aiosqlite:///{tmp_path}/b.db") as gateway:
        await gateway.register(stdio_fixture("fx"))
        await gateway.create_server({"name": "vs", "upstreams": ["fx"], "visibility": "public"})
        client = await register(gateway)
        async with httpx2.AsyncClient(timeout=30) as http:
            started = await http.get(authorize_url(gateway, client, "vs", Pkce()))
            page = await http.get(started.headers["location"])
            cookie = set_cookies(page)["bastion_consent_csrf"]
            assert "secure" not in cookie and cookie["path"] == "/oauth/consent"
