"""The admin UI's "Sign in with <provider>": the authorization-code flow with PKCE, state and nonce
against a real OpenID Connect provider on loopback, followed by hand with httpx2 as a browser would;
every forgery and failure is the sign-in page with a 4xx, and nothing shows a secret or a token."""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from bastion.app.keys import load_keys
from bastion.store.sql.identity import SqlIdentityRepo
from bastion.vault.crypto import Sealer
from tests.auth.fake_oidc import CLIENT_ID, CLIENT_SECRET, FakeProvider
from tests.harness import Running, free_port, serve, serve_asgi, settings_for
from tests.identity import make_user
from tests.ui_sign_in import set_cookies, sign_in_ui

pytestmark = pytest.mark.anyio
ADMIN, PASSWORD = "admin@example.com", "correct horse battery staple"


@dataclass
class Setup:
    gateway: Running
    idp: FakeProvider

    @property
    def base(self) -> str:
        return self.gateway.base_url

    def browser(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(timeout=30, follow_redirects=False)

    async def start(self, http: httpx2.AsyncClient, next_page: str = "/admin/tokens") -> str:
        """Start a sign-in; the URL the provider redirects back to."""
        started = await http.get(f"{self.base}/admin/oidc/start", params={"next": next_page})
        assert started.status_code == 303, started.text
        assert started.headers["location"].startswith(f"{self.idp.url}/authorize?")
        flow_cookie = started.headers["set-cookie"]
        assert "path=/admin/oidc/callback" in flow_cookie.lower() and "samesite=lax" in flow_cookie.lower()
        assert "httponly" in flow_cookie.lower()
        approved = await http.get(started.headers["location"])
        assert approved.status_code == 302
        return approved.headers["location"]

    async def sign_in(self, http: httpx2.AsyncClient, next_page: str = "/admin/tokens") -> httpx2.Response:
        return await http.get(await self.start(http, next_page))


def _gateway_settings(tmp_path: Path, idp_url: str, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "admin_email": ADMIN,
        "admin_password": PASSWORD,
        "port": free_port(),
        "oidc_issuer": idp_url,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_provider_name": "Example ID",
    }
    return settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", **(values | overrides))


@asynccontextmanager
async def provider_and_gateway(tmp_path: Path, **overrides: Any) -> AsyncIterator[Setup]:
    idp = FakeProvider()
    async with serve_asgi(idp.app()) as url:
        idp.url = url
        async with serve(_gateway_settings(tmp_path, url, **overrides)) as gateway:
            yield Setup(gateway, idp)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with provider_and_gateway(tmp_path) as ready:
        yield ready


def _signed_in(response: httpx2.Response) -> str | None:
    cookie = response.cookies.get("bastion_ui")
    return cookie if cookie and cookie.startswith("bss_") else None


def _error(response: httpx2.Response) -> str:
    """The one message on the page (the callback's query is never shown as is)."""
    found = re.findall(r'role="alert">([^<]*)<', response.text)
    assert len(found) <= 1, found
    return html.unescape(found[0]) if found else ""


async def _no_secrets(setup: Setup, response: httpx2.Response) -> None:
    assert CLIENT_SECRET not in response.text and "eyJ" not in response.text and "Traceback" not in response.text


async def test_the_sign_in_page_offers_the_provider(setup: Setup) -> None:
    async with setup.browser() as http:
        page = await http.get(f"{setup.base}/admin/login", params={"next": "/admin/tokens"})
    assert page.status_code == 200
    assert 'href="/admin/oidc/start?next=%2Fadmin%2Ftokens"' in page.text and "Sign in with Example ID" in page.text


@pytest.mark.parametrize("auth", ["client_secret_basic", "client_secret_post", "public"])
async def test_a_person_signs_in_with_the_provider_and_lands_signed_in(tmp_path: Path, auth: str) -> None:
    overrides: dict[str, Any] = {"oidc_client_auth": auth} if auth != "public" else {"oidc_client_secret": None}
    async with provider_and_gateway(tmp_path, **overrides) as setup:
        if auth == "public":
            setup.idp.client_secret = None
        async with setup.browser() as http:
            landed = await setup.sign_in(http)
            assert landed.status_code == 200, landed.text
            assert landed.headers["cache-control"] == "no-store"
            # A same-origin page lands the browser (a redirect would lose the SameSite=Strict cookie).
            assert '<meta http-equiv="refresh" content="0; url=/admin/tokens">' in landed.text
            session = _signed_in(landed)
            assert session is not None and "samesite=strict" in landed.headers["set-cookie"].lower()
            await _no_secrets(setup, landed)
            page = await http.get(f"{setup.base}/admin/tokens")
            assert page.status_code == 200 and "ada@example.com" in page.text
        sent = setup.idp.token_requests[-1]
        assert sent["code_verifier"] and sent["redirect_uri"] == f"{setup.base}/admin/oidc/callback"
        if auth == "client_secret_basic":
            assert sent["authorization"].startswith("Basic ") and "client_secret" not in sent
        elif auth == "client_secret_post":
            assert sent["client_secret"] == CLIENT_SECRET and not sent["authorization"]
        else:
            assert sent["client_id"] == CLIENT_ID and "client_secret" not in sent and not sent["authorization"]
        user = (await setup.gateway.api.get("/api/v1/users/ada@example.com")).json()
        assert user["role"] == "viewer" and user["active"] is True
        audit = (await setup.gateway.api.get("/api/v1/audit", params={"limit": "100"})).json()["items"]
        assert any(r["action"] == "GET /admin/oidc/callback" and r["target"] == "ada@example.com" and r["outcome"] == "ok" for r in audit)


async def _sign_out(setup: Setup, http: httpx2.AsyncClient) -> httpx2.Response:
    """Sign out as a browser does: the form's answer, and where its page moves on to (the pages' CSP
    lets a form redirect only to this origin, so a provider sign-out goes on from a page of ours)."""
    page = await http.get(f"{setup.base}/admin/tokens")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    out = await http.post(f"{setup.base}/admin/logout", data={"csrf": csrf.group(1)})
    if out.status_code == 200:
        refresh = re.search(r'http-equiv="refresh" content="0; url=([^"]+)"', out.text)
        assert refresh is not None and refresh.group(1) == "/admin/oidc/logout", out.text
        assert "eyJ" not in out.text
        out = await http.get(f"{setup.base}{refresh.group(1)}")
    assert out.status_code == 303
    return out


async def test_signing_out_ends_the_bastion_session_and_the_one_at_the_provider(setup: Setup) -> None:
    async with setup.browser() as http:
        landed = await setup.sign_in(http)
        session = _signed_in(landed)
        cookie = landed.headers.get_list("set-cookie")
        remembered = next(c for c in cookie if c.startswith("bastion_oidc_session="))
        assert "httponly" in remembered.lower() and "samesite=strict" in remembered.lower() and "eyJ" not in remembered
        out = await _sign_out(setup, http)
        # RP-initiated logout: to the provider's end_session_endpoint with the ID token as the hint.
        target = urlsplit(out.headers["location"])
        assert f"{target.scheme}://{target.netloc}{target.path}" == f"{setup.idp.url}/logout"
        query = {k: v[0] for k, v in parse_qs(target.query).items()}
        assert query["client_id"] == CLIENT_ID and query["post_logout_redirect_uri"] == f"{setup.base}/admin/login"
        claims = jwt.decode(query["id_token_hint"], options={"verify_signature": False})
        assert claims["iss"] == setup.idp.url and claims["email"] == "ada@example.com"
        assert any(c.startswith('bastion_oidc_session=""') for c in out.headers.get_list("set-cookie"))
        back = await http.get(out.headers["location"])
        assert back.headers["location"] == f"{setup.base}/admin/login"
        assert setup.idp.logouts == [query]
    me = await setup.gateway.api.get("/api/v1/auth/me", headers={"authorization": f"Bearer {session}"})
    assert me.status_code == 401


async def test_a_password_sign_in_signs_out_of_bastion_only(setup: Setup) -> None:
    async with setup.browser() as http:
        await setup.sign_in(http)  # someone signed in with the provider in this browser before, and left
        assert http.cookies.get("bastion_oidc_session")
        http.cookies.delete("bastion_ui")  # their session ended (a signed-in browser is sent past the sign-in page)
        signed = await sign_in_ui(http, ADMIN, PASSWORD, base=setup.base)
        assert signed.status_code == 303
        out = await _sign_out(setup, http)
    assert out.headers["location"] == "/admin/login" and setup.idp.logouts == []


async def test_the_provider_sign_out_step_without_this_browsers_cookie_goes_nowhere(setup: Setup) -> None:
    async with setup.browser() as http:  # e.g. a link from another site: SameSite=Strict sends no cookie
        out = await http.get(f"{setup.base}/admin/oidc/logout")
    assert out.status_code == 303 and out.headers["location"] == "/admin/login" and setup.idp.logouts == []


async def test_a_provider_without_an_end_session_endpoint_signs_out_of_bastion_only(tmp_path: Path) -> None:
    async with provider_and_gateway(tmp_path) as setup:
        setup.idp.end_session = False
        async with setup.browser() as http:
            await setup.sign_in(http)
            out = await _sign_out(setup, http)
        assert out.headers["location"] == "/admin/login" and setup.idp.logouts == []


async def test_a_replayed_callback_is_refused(setup: Setup) -> None:
    async with setup.browser() as http:
        callback = await setup.start(http)
        flow = http.cookies.get("bastion_oidc")
        assert (await http.get(callback)).status_code == 200
        http.cookies.set("bastion_oidc", flow or "", path="/admin/oidc/callback")
        replayed = await http.get(callback)
    assert replayed.status_code == 400 and _signed_in(replayed) is None
    assert "already used" in _error(replayed)


async def test_a_callback_for_another_browsers_state_is_refused(setup: Setup) -> None:
    async with setup.browser() as http:
        callback = await setup.start(http)
        forged = re.sub(r"state=[^&]+", "state=someone-elses-state", callback)
        refused = await http.get(forged)
    assert refused.status_code == 400 and _signed_in(refused) is None
    assert "does not match" in _error(refused)


async def test_a_callback_without_the_flow_cookie_is_refused(setup: Setup) -> None:
    async with setup.browser() as http:
        callback = await setup.start(http)
    async with setup.browser() as other:  # the attacker's code in the victim's browser (login CSRF)
        refused = await other.get(callback)
    assert refused.status_code == 400 and "expired or was started in another browser" in _error(refused)


async def test_an_expired_flow_is_refused(setup: Setup) -> None:
    async with setup.browser() as http:
        callback = await setup.start(http)
        state = parse_qs(urlsplit(callback).query)["state"][0]
        sealer = Sealer(load_keys(setup.gateway.bastion.settings).state)
        stale = {"id": "x", "state": state, "nonce": "n", "verifier": "v", "next": "/admin", "exp": time.time() - 1}
        http.cookies.clear()
        http.cookies.set("bastion_oidc", sealer.seal(stale, "bastion admin oidc flow"), path="/admin/oidc/callback")
        refused = await http.get(callback)
    assert refused.status_code == 400 and "expired" in _error(refused)


async def test_the_providers_refusal_is_shown(setup: Setup) -> None:
    setup.idp.deny = "access_denied"
    async with setup.browser() as http:
        refused = await setup.sign_in(http)
    assert refused.status_code == 401 and _signed_in(refused) is None
    assert _error(refused) == "the identity provider did not sign you in (access_denied)"


async def test_a_crafted_error_text_is_not_shown(setup: Setup) -> None:
    async with setup.browser() as http:
        await setup.start(http)
        crafted = await http.get(f"{setup.base}/admin/oidc/callback", params={"error": "Call 555-0100 to unlock <b>now</b>"})
    assert crafted.status_code == 401 and "555" not in crafted.text
    assert _error(crafted) == "the identity provider did not sign you in (unknown_error)"


async def test_a_refused_code_exchange_says_so_without_the_secret(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    setup.idp.client_secret = "the provider expects another secret"
    async with setup.browser() as http:
        refused = await setup.sign_in(http)
    assert refused.status_code == 400 and "invalid_client" in _error(refused)
    await _no_secrets(setup, refused)
    assert any("token endpoint refused" in r.getMessage() for r in caplog.records)
    assert all(CLIENT_SECRET not in r.getMessage() and CLIENT_SECRET not in str(vars(r)) for r in caplog.records)


@pytest.mark.parametrize(
    ("forgery", "said"),
    [
        ({"nonce": "not-this-flows-nonce"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"aud": "another-client"}, "another client"),
        ({"aud": [CLIENT_ID, "another-client"]}, "another client"),
        ({"azp": "another-client"}, "another client"),
        ({"iss": "https://idp.example"}, "another issuer"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"iat": int(time.time()) + 3600}, "could not be verified"),
    ],
)
async def test_a_forged_id_token_is_refused(setup: Setup, forgery: dict[str, Any], said: str) -> None:
    setup.idp.id_token_overrides = forgery
    async with setup.browser() as http:
        refused = await setup.sign_in(http)
    assert refused.status_code == 401 and said in _error(refused) and _signed_in(refused) is None
    await _no_secrets(setup, refused)


async def test_an_id_token_signed_by_an_unpublished_key_is_refused(setup: Setup) -> None:
    setup.idp.sign_with = ec.generate_private_key(ec.SECP256R1())
    async with setup.browser() as http:
        refused = await setup.sign_in(http)
    assert refused.status_code == 401 and _signed_in(refused) is None


async def test_an_hmac_id_token_is_refused(setup: Setup) -> None:
    setup.idp.sign_with = b"any shared secret, or the provider's public key"
    async with setup.browser() as http:
        refused = await setup.sign_in(http)
    assert refused.status_code == 401 and "'HS256' is not accepted" in _error(refused)


async def test_an_id_token_whose_algorithm_does_not_fit_its_key_is_refused(setup: Setup) -> None:
    setup.idp.declare_algorithms = False
    setup.idp.sign_with = setup.idp.keys["rsa1"]  # RS256, under the EC key's id
    async with setup.browser() as http:
        refused = await setup.sign_in(http)
    assert refused.status_code == 401 and "could not be verified" in _error(refused)


async def test_an_rs256_id_token_is_accepted(setup: Setup) -> None:
    setup.idp.kid = "rsa1"
    async with setup.browser() as http:
        assert _signed_in(await setup.sign_in(http)) is not None


async def test_next_elsewhere_lands_on_the_dashboard(setup: Setup) -> None:
    async with setup.browser() as http:
        for target in ("//evil.example/admin", "https://evil.example/", "/admin/..//evil.example", "/\\evil.example"):
            landed = await setup.sign_in(http, target)
            assert landed.status_code == 200
            assert '<meta http-equiv="refresh" content="0; url=/admin">' in landed.text, target


async def test_an_unverified_email_is_refused(setup: Setup) -> None:
    setup.idp.claims = {"email": ADMIN, "email_verified": False}
    async with setup.browser() as http:
        refused = await setup.sign_in(http)
    assert refused.status_code == 403 and "not verified" in _error(refused) and _signed_in(refused) is None


async def test_a_deactivated_account_is_refused(setup: Setup) -> None:
    user = await make_user(setup.gateway, "ada@example.com", "developer")
    await setup.gateway.api.patch(f"/api/v1/users/{user['id']}", json={"active": False})
    async with setup.browser() as http:
        refused = await setup.sign_in(http)
    assert refused.status_code == 403 and "deactivated" in _error(refused)


async def test_an_account_deleted_as_it_signs_in_is_refused_as_for_a_password(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race of tests/attacks/test_concurrent_upstreams.py's password sign-in, made certain: the
    # account is found, then deleted before its session is stored. No account: a 401, not the 404 of
    # a missing user, nor a 500.
    user = await make_user(setup.gateway, "ada@example.com", "developer")
    store = SqlIdentityRepo.create_session

    async def deleted_first(repo: SqlIdentityRepo, session: Any, token_hash: str, **kwargs: Any) -> None:
        assert (await setup.gateway.api.delete(f"/api/v1/users/{user['id']}")).status_code == 204
        await store(repo, session, token_hash, **kwargs)

    monkeypatch.setattr(SqlIdentityRepo, "create_session", deleted_first)
    async with setup.browser() as http:
        refused = await setup.sign_in(http)
    assert refused.status_code == 401 and "no Bastion account for ada@example.com" in _error(refused), refused.text
    assert _signed_in(refused) is None
    await _no_secrets(setup, refused)
    assert (await setup.gateway.api.get("/api/v1/users/ada@example.com")).status_code == 404


async def test_an_existing_account_keeps_its_role_and_the_claim_sets_its_teams(setup: Setup) -> None:
    await make_user(setup.gateway, "ada@example.com", "developer", "payments", "search")
    assert (await setup.gateway.api.post("/api/v1/teams", json={"name": "billing"})).status_code == 201
    setup.idp.claims |= {"bastion_role": "admin", "groups": ["billing", "payments", "not-a-bastion-team"]}
    async with setup.browser() as http:
        assert _signed_in(await setup.sign_in(http)) is not None
    user = (await setup.gateway.api.get("/api/v1/users/ada@example.com")).json()
    assert user["role"] == "developer" and sorted(user["teams"]) == ["billing", "payments"]


@pytest.mark.parametrize(("claim", "allow_admin", "role"), [("admin", False, "viewer"), ("admin", True, "admin"), ("developer", False, "developer"), ("root", False, "viewer")])
async def test_a_created_accounts_role_is_never_admin_unless_allowed(tmp_path: Path, claim: str, allow_admin: bool, role: str) -> None:
    async with provider_and_gateway(tmp_path, oidc_ui_allow_admin=allow_admin) as setup:
        setup.idp.claims |= {"bastion_role": claim}
        async with setup.browser() as http:
            assert _signed_in(await setup.sign_in(http)) is not None
        user = (await setup.gateway.api.get("/api/v1/users/ada@example.com")).json()
        assert user["role"] == role


async def test_without_provisioning_only_existing_accounts_sign_in(tmp_path: Path) -> None:
    async with provider_and_gateway(tmp_path, oidc_ui_create_users=False) as setup:
        async with setup.browser() as http:
            refused = await setup.sign_in(http)
            assert refused.status_code == 403 and "no Bastion account" in _error(refused)
            await make_user(setup.gateway, "ada@example.com")
            assert _signed_in(await setup.sign_in(http)) is not None
        # The created account has no password: it cannot sign in locally.
        login = await setup.gateway.api.post("/api/v1/auth/login", json={"email": "ada@example.com", "password": "!external-identity"})
        assert login.status_code == 401


async def test_an_unreachable_provider_is_a_clear_page(tmp_path: Path) -> None:
    async with serve(_gateway_settings(tmp_path, f"http://127.0.0.1:{free_port()}")) as gateway:
        async with httpx2.AsyncClient(timeout=30) as http:
            page = await http.get(f"{gateway.base_url}/admin/oidc/start")
    assert page.status_code == 503 and "could not be reached" in page.text and "Traceback" not in page.text


async def test_settings_that_cannot_work_are_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs BASTION_OIDC_ISSUER"):
        settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", oidc_client_id=CLIENT_ID)
    with pytest.raises(ValidationError, match="'openid' scope"):
        _gateway_settings(tmp_path, "https://idp.example", oidc_ui_scopes="email profile")


async def test_over_https_the_providers_sign_in_cookies_are_host_cookies(tmp_path: Path) -> None:
    """With an https public URL the session cookie is a `__Host-` cookie, but a sign-in with the
    provider kept its flow in a plain `bastion_oidc` cookie for the callback's path: a sibling
    subdomain could plant its own flow there (one it started, for its own account at the provider)
    and sign the victim's browser in as the attacker. The flow cookie, and the one keeping the ID token
    for signing out at the provider, are `__Host-` cookies there now, and only those names are read."""
    public = "https://bastion.example.com"
    async with provider_and_gateway(tmp_path, public_url=public) as setup, setup.browser() as http:
        started = await http.get(f"{setup.base}/admin/oidc/start", params={"next": "/admin/tokens"})
        assert started.status_code == 303, started.text
        flow = set_cookies(started)["__Host-bastion_oidc"]
        assert flow["path"] == "/" and "secure" in flow and "domain" not in flow and "httponly" in flow
        approved = await http.get(started.headers["location"])
        back = approved.headers["location"]
        assert back.startswith(f"{public}/admin/oidc/callback?")
        callback = setup.base + back.removeprefix(public)  # what the browser at the public URL reaches
        # The cookies are Secure: sent back by hand, as a browser at the https address would.
        planted = await http.get(callback, headers={"cookie": f"bastion_oidc={flow['']}"})
        assert planted.status_code == 400 and not set_cookies(planted).get("__Host-bastion_ui"), planted.text
        landed = await http.get(callback, headers={"cookie": f"__Host-bastion_oidc={flow['']}"})
        assert landed.status_code == 200, landed.text
        cookies = set_cookies(landed)
        assert cookies["__Host-bastion_ui"][""].startswith("bss_")
        provider = cookies["__Host-bastion_oidc_session"]
        assert provider["path"] == "/" and "secure" in provider and "domain" not in provider
        assert cookies["__Host-bastion_oidc"]["max-age"] == "0" and cookies["__Host-bastion_oidc"]["path"] == "/"
        session = f"__Host-bastion_ui={cookies['__Host-bastion_ui']['']}"
        # Signing out goes on to the provider only with the __Host- cookie that says this browser signed in there.
        for sent, goes_on in ((f"bastion_oidc_session={provider['']}", False), (f"__Host-bastion_oidc_session={provider['']}", True)):
            page = await http.get(f"{setup.base}/admin/oidc/logout", headers={"cookie": f"{session}; {sent}"})
            assert page.status_code == 303 and page.headers["location"].startswith(setup.idp.url) is goes_on, page.headers
