"""Per-user OAuth upstreams (auth type oauth_user): each Bastion user connects their own account at a
real loopback OAuth provider (authorization code + PKCE), and every call reaches the real upstream
with that user's own token, refreshed before expiry and once after a 401. Tokens are sealed per user."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
from click.testing import CliRunner, Result
from mcp import MCPError
from sqlalchemy import text

from bastion.cli.main import cli as cli_root
from bastion.core.errors import CredentialsUnavailable, UpstreamNotConnected
from bastion.core.ports import ConnectFlow, UpstreamTokenStore
from bastion.store.memory_user_tokens import MemoryUpstreamTokens
from bastion.store.sql.user_tokens import SqlUpstreamTokens
from tests.harness import TOKEN, Running, http_fixture, postgres_database, serve, serve_asgi, settings_for
from tests.identity import PASSWORD, login, make_user
from tests.vault.user_oauth_provider import UserOAuthProvider

pytestmark = pytest.mark.anyio

CLIENT_SECRET = "ucs-very-private-0123456789"
CALLBACK = "/oauth/upstream/callback"
START = "/oauth/upstream/start"


@asynccontextmanager
async def provider(
    gateway: Running | None = None, transport: str = "streamable-http", **kwargs: Any
) -> AsyncIterator[tuple[UserOAuthProvider, str]]:
    """(the provider, its base URL); its gate in front of the real fixture upstream is at `<base>/mcp`.
    With a `gateway` that outlives it, the upstream is removed first: its users' open streams through
    the gate end, so the provider's server can stop."""
    with http_fixture(transport) as fx:
        world = UserOAuthProvider(f"http://127.0.0.1:{fx.port}", "bastion-up", CLIENT_SECRET, **kwargs)
        try:
            async with serve_asgi(world) as base:
                try:
                    yield world, base
                finally:
                    if gateway is not None:
                        await gateway.api.delete("/api/v1/upstreams/up", params={"force": "true"})
        finally:
            await world.aclose()


def upstream_body(base: str, **changes: Any) -> dict[str, Any]:
    auth = {
        "type": "oauth_user",
        "authorization_url": f"{base}/authorize",
        "token_url": f"{base}/token",
        "client_id": "bastion-up",
        "client_secret": CLIENT_SECRET,
        "scope": "repo",
    }
    body = {"name": "up", "transport": "streamable-http", "url": f"{base}/mcp", "isolation": "per_user", "auth": auth}
    return body | {"visibility": "public"} | changes


async def setup(gateway: Running, base: str, transport: str = "streamable-http") -> dict[str, str]:
    """The upstream, a public virtual server over it, and two developers; their session tokens by name."""
    path = "/mcp" if transport == "streamable-http" else "/sse"
    await gateway.register(upstream_body(base, transport=transport, url=f"{base}{path}"))
    await gateway.create_server({"name": "vs", "upstreams": ["up"], "visibility": "public"})
    sessions = {}
    for name in ("alice", "bob"):
        await make_user(gateway, f"{name}@example.com", "developer")
        sessions[name] = (await login(gateway, f"{name}@example.com")).json()["token"]
    return sessions


def as_user(gateway: Running, token: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(base_url=gateway.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


async def start(gateway: Running, token: str) -> str:
    """The link the user is given (Bastion's start page), on the running gateway's port."""
    async with as_user(gateway, token) as api:
        started = await api.post("/api/v1/upstreams/up/connect")
    assert started.status_code == 200, started.text
    link = urlsplit(str(started.json()["authorization_url"]))
    assert link.path == START  # Bastion's configured base URL names port 0 in tests: the query is the link
    return f"{gateway.base_url}{START}?{link.query}"


def browser() -> httpx2.AsyncClient:
    """A browser: its own cookie jar, no Bastion credentials."""
    return httpx2.AsyncClient(timeout=60)


def state_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


async def sign_in(
    gateway: Running, browser: httpx2.AsyncClient, start_url: str, email: str, password: str = PASSWORD
) -> httpx2.Response:
    """What the user does on the start page: open it, sign in; Bastion's answer."""
    page = await browser.get(start_url)
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    form = {"state": state_of(start_url), "csrf": csrf.group(1), "email": email, "password": password}
    return await browser.post(f"{gateway.base_url}{START}", data=form)


async def approve(gateway: Running, browser: httpx2.AsyncClient, start_url: str, email: str, account: str) -> str:
    """Sign in at Bastion's start page as `email`, then at the provider as `account`; the callback URL
    the provider sends the browser back to."""
    signed_in = await sign_in(gateway, browser, start_url, email)
    assert signed_in.status_code == 303, signed_in.text
    answer = await browser.get(f"{signed_in.headers['location']}&login_as={account}")
    assert answer.status_code == 302, answer.text
    return f"{gateway.base_url}{CALLBACK}?{urlsplit(answer.headers['location']).query}"


async def callback(url: str, browser: httpx2.AsyncClient | None = None) -> httpx2.Response:
    """The callback as `browser` (with its cookies) or as a browser with none."""
    if browser is not None:
        return await browser.get(url)
    async with httpx2.AsyncClient(timeout=60) as stranger:
        return await stranger.get(url)


async def email_of(gateway: Running, token: str) -> str:
    async with as_user(gateway, token) as api:
        return str((await api.get("/api/v1/auth/me")).json()["user"]["email"])


async def connect(gateway: Running, token: str, account: str) -> None:
    """The user behind `token` connects provider `account` in their own browser."""
    async with browser() as own:
        url = await approve(gateway, own, await start(gateway, token), await email_of(gateway, token), account)
        done = await callback(url, own)
    assert done.status_code == 200, done.text


async def whoami(gateway: Running, token: str) -> dict[str, Any]:
    async with gateway.client("vs", token=token) as client:
        result = await client.call_tool("up__whoami", {})
    return dict(json.loads(result.content[0].text))  # type: ignore[union-attr]


async def call_error(gateway: Running, token: str) -> int:
    async with gateway.client("vs", token=token) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("up__whoami", {})
    return caught.value.code


async def test_each_user_reaches_the_upstream_with_their_own_token(
    any_db_gateway: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway = any_db_gateway
    async with provider(gateway) as (world, base):
        sessions = await setup(gateway, base)
        alice, bob = sessions["alice"], sessions["bob"]
        assert (await gateway.api.get("/api/v1/upstreams/up")).json()["counts"]["tools"] == 0  # nobody to ask yet

        start_url = await start(gateway, alice)
        async with browser() as own:
            shown_page = await own.get(start_url)
            assert (
                "alice@example.com" in shown_page.text
                and "frame-ancestors 'none'" in shown_page.headers["content-security-policy"]
            )
            signed_in = await sign_in(gateway, own, start_url, "alice@example.com")
            assert signed_in.status_code == 303, signed_in.text
            query = parse_qs(urlsplit(signed_in.headers["location"]).query)
            assert query["code_challenge_method"] == ["S256"] and query["client_id"] == ["bastion-up"]
            assert query["scope"] == ["repo"] and query["redirect_uri"][0].endswith(CALLBACK)
            assert query["state"] == [state_of(start_url)]
            cookie = signed_in.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=lax" in cookie and "path=/oauth/upstream/" in cookie
            page = await callback(await approve(gateway, own, start_url, "alice@example.com", "alice-gh"), own)
        assert page.status_code == 200 and "content-security-policy" in page.headers
        shown = (await gateway.api.get("/api/v1/upstreams/up")).json()
        assert shown["counts"]["tools"] > 0 and shown["status"] == "healthy"  # discovered over alice's connection

        seen = await whoami(gateway, alice)
        assert seen["x-account"] == "alice-gh" and seen["authorization"].startswith("Bearer at-alice-gh-")
        assert await call_error(gateway, bob) == UpstreamNotConnected.jsonrpc_code  # never alice's token
        assert await call_error(gateway, TOKEN) == UpstreamNotConnected.jsonrpc_code  # the admin has no account

        await connect(gateway, bob, "bob-gh")
        assert (await whoami(gateway, bob))["x-account"] == "bob-gh"
        assert (await whoami(gateway, alice))["x-account"] == "alice-gh"
        assert TOKEN not in json.dumps(world.seen_authorization)

        async with as_user(gateway, alice) as api:
            shown = await api.get("/api/v1/upstreams/up/connection")
            assert shown.json() == {"upstream": "up", "connected": True, "problem": None}
            assert "at-alice" not in shown.text and "rt-alice" not in shown.text
        stored = await _stored_tokens(gateway)
        assert "at-alice" not in stored and "rt-bob" not in stored and CLIENT_SECRET not in stored

        async with as_user(gateway, bob) as api:
            assert (await api.delete("/api/v1/upstreams/up/connection")).status_code == 204
            assert (await api.get("/api/v1/upstreams/up/connection")).json()["connected"] is False
            assert (await api.delete("/api/v1/upstreams/up/connection")).status_code == 404
        assert await call_error(gateway, bob) == UpstreamNotConnected.jsonrpc_code
        assert (await whoami(gateway, alice))["x-account"] == "alice-gh"
    secrets = ("at-alice", "rt-alice", "at-bob", "rt-bob", "code-", CLIENT_SECRET, PASSWORD)
    assert not [r for r in caplog.records if r.name.startswith("bastion") and any(x in r.getMessage() for x in secrets)]


async def _stored_tokens(gateway: Running) -> str:
    async with gateway.bastion.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM upstream_user_tokens"))).all()
    return repr([tuple(r) for r in rows])


async def test_a_token_row_copied_to_another_user_does_not_open_for_them(any_db_gateway: Running) -> None:
    gateway = any_db_gateway
    async with provider(gateway) as (_world, base):
        sessions = await setup(gateway, base)
        alice, bob = sessions["alice"], sessions["bob"]
        await connect(gateway, alice, "alice-gh")
        async with as_user(gateway, bob) as api:
            bob_id = (await api.get("/api/v1/auth/me")).json()["user"]["id"]
        async with gateway.bastion.engine.begin() as conn:  # an attacker with write access to the database
            await conn.execute(
                text(
                    "INSERT INTO upstream_user_tokens (upstream_id, user_id, tokens_sealed, updated_at) "
                    "SELECT upstream_id, :bob, tokens_sealed, updated_at FROM upstream_user_tokens"
                ),
                {"bob": bob_id},
            )
        assert await call_error(gateway, bob) == CredentialsUnavailable.jsonrpc_code  # not alice's identity
        async with as_user(gateway, bob) as api:
            shown = (await api.get("/api/v1/upstreams/up/connection")).json()
        assert shown["connected"] is False and "connect" in shown["problem"]
        assert (await whoami(gateway, alice))["x-account"] == "alice-gh"

        await connect(gateway, bob, "bob-gh")  # connecting again replaces the copied row
        assert (await whoami(gateway, bob))["x-account"] == "bob-gh"


async def test_tokens_refresh_shortly_before_expiry_and_rotated_ones_are_kept(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/b.db"
    async with provider(expires_in=20) as (world, base):  # 20 s is inside the refresh margin: every use refreshes
        async with serve(settings_for(url)) as gateway:
            alice = (await setup(gateway, base))["alice"]
            await connect(gateway, alice, "alice-gh")
            first = (await whoami(gateway, alice))["authorization"]
            second = (await whoami(gateway, alice))["authorization"]
            assert first != second and first.startswith("Bearer at-alice-gh-")
            refreshes = [r for r in world.token_requests if r["grant_type"] == "refresh_token"]
            assert refreshes and all(r["scope"] == "repo" for r in refreshes)
            # Each refresh token is single use at the provider: later ones only work if Bastion kept
            # every rotated token, which a restart proves it stored.
        async with serve(settings_for(url)) as again:
            token = (await login(again, "alice@example.com")).json()["token"]
            assert (await whoami(again, token))["x-account"] == "alice-gh"
            assert world.refused == 0


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_a_refused_token_is_refreshed_once_and_the_call_succeeds(transport: str, tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path}/b.db"
    async with provider(transport=transport) as (world, base), serve(settings_for(database)) as gateway:
        alice = (await setup(gateway, base, transport))["alice"]
        await connect(gateway, alice, "alice-gh")
        before = (await whoami(gateway, alice))["authorization"]
        world.revoke_access()  # the provider forgot every access token; refresh tokens still work
        refused = world.refused
        after = await whoami(gateway, alice)
        assert after["x-account"] == "alice-gh" and after["authorization"] != before
        assert world.refused == refused + 1

        if transport == "streamable-http":
            # Now the refresh fails too: the user must connect again. (Over legacy SSE the SDK's transport
            # swallows the failed refresh of the call that meets the 401; that call times out instead.)
            world.refresh_tokens.clear()
            world.revoke_access()
            assert await call_error(gateway, alice) == UpstreamNotConnected.jsonrpc_code
            assert await call_error(gateway, alice) == UpstreamNotConnected.jsonrpc_code


async def test_a_connect_state_is_single_use_and_tied_to_the_user_who_started_it(tmp_path: Path) -> None:
    async with provider() as (_world, base), serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
        sessions = await setup(gateway, base)
        alice, bob = sessions["alice"], sessions["bob"]
        async with browser() as own:
            url = await approve(gateway, own, await start(gateway, alice), "alice@example.com", "alice-gh")
            assert (await callback(url, own)).status_code == 200
            replayed = await callback(url, own)
            assert replayed.status_code == 400 and "at-alice" not in replayed.text

            forged = url.replace("state=", "state=x")
            assert (await callback(forged, own)).status_code == 400
            assert (await callback(f"{gateway.base_url}{CALLBACK}?code=c", own)).status_code == 400
            assert (await own.get(f"{gateway.base_url}{START}?state=unknown")).status_code == 400

        await connect(gateway, bob, "bob-gh")
        assert (await whoami(gateway, alice))["x-account"] == "alice-gh"
        assert (await whoami(gateway, bob))["x-account"] == "bob-gh"

        # A refusal at the provider spends the state too.
        async with browser() as own:
            start_url = await start(gateway, bob)
            assert (await sign_in(gateway, own, start_url, "bob@example.com")).status_code == 303
            state = state_of(start_url)
            refused = await callback(f"{gateway.base_url}{CALLBACK}?error=access_denied&state={state}", own)
            assert refused.status_code == 400
            assert (await callback(f"{gateway.base_url}{CALLBACK}?code=code-1&state={state}", own)).status_code == 400


async def test_a_connect_link_sent_to_someone_else_cannot_link_their_account_to_the_sender(
    any_db_gateway: Running,
) -> None:
    """Account-linking CSRF: alice (the attacker) starts a flow and gets bob (the victim) to finish it."""
    gateway = any_db_gateway
    async with provider(gateway) as (world, base):
        sessions = await setup(gateway, base)
        alice, bob = sessions["alice"], sessions["bob"]
        async with browser() as attacker, browser() as victim:
            start_url = await start(gateway, alice)
            # Bob, signed in as himself on alice's start page, is refused and gets no way on.
            as_bob = await sign_in(gateway, victim, start_url, "bob@example.com")
            assert as_bob.status_code == 403 and "location" not in as_bob.headers
            assert "set-cookie" not in as_bob.headers

            # Alice passes her own start page and sends bob the provider's URL; bob approves there
            # as his provider account, and his browser (without her cookie) comes back: refused, spent.
            signed_in = await sign_in(gateway, attacker, start_url, "alice@example.com")
            assert signed_in.status_code == 303
            at_provider = await victim.get(f"{signed_in.headers['location']}&login_as=bob-gh")
            back = f"{gateway.base_url}{CALLBACK}?{urlsplit(at_provider.headers['location']).query}"
            assert (await callback(back, victim)).status_code == 403
            assert (await callback(back)).status_code == 400  # a browser without cookies: the state is spent
            assert (await callback(back, attacker)).status_code == 400  # even for alice's own browser now

            # Bob's cookie of his own flow does not finish alice's second one either.
            own_url = await start(gateway, bob)
            assert (await sign_in(gateway, victim, own_url, "bob@example.com")).status_code == 303
            second = await sign_in(gateway, attacker, await start(gateway, alice), "alice@example.com")
            at_provider = await victim.get(f"{second.headers['location']}&login_as=bob-gh")
            back = f"{gateway.base_url}{CALLBACK}?{urlsplit(at_provider.headers['location']).query}"
            refused = await callback(back, victim)
            assert refused.status_code == 403 and "browser" in refused.text
        assert await _stored_tokens(gateway) == "[]"
        assert not [r for r in world.token_requests if r.get("grant_type") == "authorization_code"]
        for token in (alice, bob):
            async with as_user(gateway, token) as api:
                assert (await api.get("/api/v1/upstreams/up/connection")).json()["connected"] is False

        await connect(gateway, bob, "bob-gh")  # bob's own flow in his own browser still works
        assert (await whoami(gateway, bob))["x-account"] == "bob-gh"
        assert await call_error(gateway, alice) == UpstreamNotConnected.jsonrpc_code


async def test_the_start_page_refuses_a_wrong_password_and_locks_after_repeated_failures(tmp_path: Path) -> None:
    async with provider() as (_world, base), serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
        alice = (await setup(gateway, base))["alice"]
        start_url = await start(gateway, alice)
        async with browser() as own:
            for _ in range(gateway.bastion.settings.login_max_failures):
                wrong = await sign_in(gateway, own, start_url, "alice@example.com", "not the password")
                assert wrong.status_code == 401 and "location" not in wrong.headers
                assert "not the password" not in wrong.text
            locked = await sign_in(gateway, own, start_url, "alice@example.com")  # even the right one waits now
            assert locked.status_code == 429 and "location" not in locked.headers


async def test_the_start_form_needs_its_csrf_token_and_cookie(tmp_path: Path) -> None:
    async with provider() as (_world, base), serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
        alice = (await setup(gateway, base))["alice"]
        start_url = await start(gateway, alice)
        post_to = f"{gateway.base_url}{START}"
        creds = {"state": state_of(start_url), "email": "alice@example.com", "password": PASSWORD}
        async with browser() as own, browser() as elsewhere:
            page = await own.get(start_url)
            csrf_cookie = page.headers["set-cookie"].lower()
            assert "samesite=strict" in csrf_cookie and "httponly" in csrf_cookie
            match = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert match is not None
            csrf = match.group(1)
            assert (await own.post(post_to, data=creds)).status_code == 403  # no token
            assert (await own.post(post_to, data=creds | {"csrf": "x" * 43})).status_code == 403  # a wrong one
            assert (await elsewhere.post(post_to, data=creds | {"csrf": csrf})).status_code == 403  # no cookie
            foreign = await own.post(post_to, data=creds | {"csrf": csrf}, headers={"origin": "https://evil.example"})
            assert foreign.status_code == 403
            unknown = await own.post(post_to, data=creds | {"csrf": csrf, "state": "unknown"})
            assert unknown.status_code == 400
            answered = await own.post(post_to, data=creds | {"csrf": csrf})
            assert answered.status_code == 303 and answered.headers["location"].startswith(f"{base}/authorize?")


async def test_per_user_oauth_settings_are_checked_and_the_secret_is_write_only(tmp_path: Path) -> None:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
        base = "http://127.0.0.1:9"
        shared = await gateway.api.post("/api/v1/upstreams", json=upstream_body(base, isolation="shared"))
        assert shared.status_code == 400 and shared.headers["content-type"] == "application/problem+json"
        bad = upstream_body(base)
        bad["auth"] = {**bad["auth"], "authorization_url": "ftp://x/authorize"}
        assert (await gateway.api.post("/api/v1/upstreams", json=bad)).status_code == 400

        created = await gateway.register(upstream_body(base))
        assert created["auth"]["client_secret"] == "********" and created["status"] == "unknown"
        assert CLIENT_SECRET not in json.dumps(created)
        # Registering does not connect (there is no one to connect as yet); a PATCH may leave out the secret.
        auth = {k: v for k, v in created["auth"].items() if k != "client_secret"} | {"scope": "read"}
        patched = await gateway.api.patch("/api/v1/upstreams/up", json={"auth": auth})
        assert patched.status_code == 200, patched.text
        assert patched.json()["auth"]["client_secret"] == "********"

        async with as_user(gateway, TOKEN) as admin:
            started = await admin.post("/api/v1/upstreams/up/connect")
        assert started.status_code == 403  # the admin token is no user with an account to connect


async def cli(gateway: Running, token: str, *args: str) -> Result:
    env = {"BASTION_URL": gateway.base_url, "BASTION_TOKEN": token, "NO_PROXY": "127.0.0.1,localhost"}
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli_root, list(args), env=env))


async def test_a_user_connects_with_the_cli_or_their_api_token(tmp_path: Path) -> None:
    async with provider() as (_world, base), serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gateway:
        alice = (await setup(gateway, base))["alice"]
        printed = await cli(gateway, alice, "upstreams", "connect", "up")
        assert printed.exit_code == 0, printed.output
        url = printed.stdout.strip().splitlines()[-1]
        assert urlsplit(url).path == START and "state=" in url and alice not in printed.output
        async with browser() as own:
            start_url = f"{gateway.base_url}{START}?{urlsplit(url).query}"
            back = await approve(gateway, own, start_url, "alice@example.com", "alice-gh")
            assert (await callback(back, own)).status_code == 200

        async with as_user(gateway, alice) as api:
            for permissions, status in ((["mcp"], 200), (["read"], 403)):
                made = await api.post(
                    "/api/v1/tokens", json={"name": f"t{status}", "servers": "*", "permissions": permissions}
                )
                assert made.status_code == 201, made.text
                async with as_user(gateway, made.json()["token"]) as with_token:
                    assert (await with_token.post("/api/v1/upstreams/up/connect")).status_code == status
            mcp_token = await api.post("/api/v1/tokens", json={"name": "m", "servers": "*", "permissions": ["mcp"]})
        # The API token acts for alice: same account, same connection as her session.
        assert (await whoami(gateway, mcp_token.json()["token"]))["x-account"] == "alice-gh"

        gone = await cli(gateway, alice, "upstreams", "disconnect", "up")
        assert gone.exit_code == 0, gone.output
        assert await call_error(gateway, alice) == UpstreamNotConnected.jsonrpc_code


@pytest.mark.parametrize("kind", ["memory", "sql"])
async def test_a_connect_flow_opens_once_and_not_after_it_expires(kind: str, any_db_gateway: Running) -> None:
    now = datetime.now(UTC)
    store: UpstreamTokenStore = MemoryUpstreamTokens()
    if kind == "sql":
        store = SqlUpstreamTokens(any_db_gateway.bastion.engine, any_db_gateway.bastion.gateway.repo.envelope)
    user = (await make_user(any_db_gateway, "carol@example.com", "developer"))["id"]
    flow = ConnectFlow(user=user, upstream="up", verifier="v" * 64, expires_at=now + timedelta(minutes=10))
    await store.save_flow("a" * 64, flow)
    await store.save_flow("b" * 64, flow)
    assert await store.get_flow("a" * 64, now) == flow
    assert await store.mark_flow("a" * 64, csrf_hash="c" * 64)
    assert await store.mark_flow("a" * 64, browser_hash="d" * 64)  # the csrf hash stays
    assert await store.get_flow("a" * 64, now + timedelta(minutes=11)) is None  # expired, left in place
    assert await store.take_flow("a" * 64, now) == replace(flow, csrf_hash="c" * 64, browser_hash="d" * 64)
    assert not await store.mark_flow("a" * 64, csrf_hash="e" * 64)  # taken
    assert await store.take_flow("a" * 64, now) is None  # single use
    assert await store.take_flow("b" * 64, now + timedelta(minutes=11)) is None  # expired
    assert await store.take_flow("b" * 64, now) is None  # and spent by that attempt


@asynccontextmanager
async def database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/b.db"
    else:
        async with postgres_database() as url:
            yield url


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_token_row_swapped_over_another_users_fails_for_them_after_a_restart(kind: str, tmp_path: Path) -> None:
    async with database(kind, tmp_path) as url, provider() as (_world, base):
        async with serve(settings_for(url)) as gateway:
            sessions = await setup(gateway, base)
            await connect(gateway, sessions["alice"], "alice-gh")
            await connect(gateway, sessions["bob"], "bob-gh")
        async with serve(settings_for(url)) as gateway:
            alice_id, bob_id = await _user_id(gateway, "alice"), await _user_id(gateway, "bob")
            async with gateway.bastion.engine.begin() as conn:  # alice's sealed tokens copied over bob's
                copy = text(
                    "UPDATE upstream_user_tokens SET tokens_sealed = "
                    "(SELECT tokens_sealed FROM upstream_user_tokens WHERE user_id = :alice) WHERE user_id = :bob"
                )
                assert (await conn.execute(copy, {"alice": alice_id, "bob": bob_id})).rowcount == 1
            alice = (await login(gateway, "alice@example.com")).json()["token"]
            bob = (await login(gateway, "bob@example.com")).json()["token"]
            assert await call_error(gateway, bob) == CredentialsUnavailable.jsonrpc_code
            assert (await whoami(gateway, alice))["x-account"] == "alice-gh"
            await gateway.api.delete("/api/v1/upstreams/up", params={"force": "true"})


async def _user_id(gateway: Running, name: str) -> str:
    users = (await gateway.api.get("/api/v1/users")).json()["items"]
    return next(str(u["id"]) for u in users if u["email"] == f"{name}@example.com")
