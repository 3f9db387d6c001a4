"""Open streams of an OAuth grant are re-checked by the grant, not by the expiry of the access token
they were last used with. A client idle past its 10-minute token, or whose refreshed tokens go to
another replica, kept its grant but lost its session (404) at the next re-check pass; now the
session and its GET stream live while the grant does (neither revoked nor run out, its client
registered, its user active), and end at once when it is revoked at /revoke (not at the next
periodic pass). An expired token is still refused on every request: only the re-check looks past it.

The gateway's clock for JWTs is moved an hour on (`JwtClock.later`) rather than waiting for a token to expire;
re-check passes are started by the test and awaited (`Passes`), the periodic ones are an hour apart."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import jwt.api_jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import delete, update

from bastion.app.keys import load_keys
from bastion.auth.oauth.keys import SigningKeys
from bastion.auth.oidc import OidcConfig, OidcVerifier
from bastion.core.errors import Forbidden, Unauthenticated
from bastion.store.sql.oauth import SqlOAuthRepo, clients, families, refresh_tokens
from bastion.vault.crypto import Sealer
from bastion.web import refused_streams
from bastion.web.refused_streams import EVERY_STREAM
from tests.attacks.test_blackbox_isolation import drain_until_closed, opened
from tests.attacks.test_refreshed_oauth_sessions import two_replicas
from tests.auth.oauth_client import register, serve_public, token_request, tokens_for
from tests.harness import TEST_DATABASE, Running, open_raw_session, postgres_database, session_headers, stdio_fixture
from tests.identity import make_user

pytestmark = pytest.mark.anyio

DEV = "dev@example.com"
PING = {"jsonrpc": "2.0", "id": 3, "method": "ping"}


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Running]:
    """A gateway with virtual server `vs` and developer DEV; its periodic re-check an hour apart."""
    async with AsyncExitStack() as stack:
        if TEST_DATABASE == "postgres":
            database = await stack.enter_async_context(postgres_database())
        else:
            database = f"sqlite+aiosqlite:///{tmp_path}/b.db"
        running = await stack.enter_async_context(serve_public(database, stream_recheck_interval=3600.0))
        await running.register(stdio_fixture("fx"))
        await running.create_server({"name": "vs", "upstreams": ["fx"], "visibility": "public"})
        await make_user(running, DEV, "developer")
        yield running


class _AnHourLater(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:
        return datetime.now(tz) + timedelta(hours=1)


class JwtClock:
    """The clock JWTs are verified by: `later()` moves it an hour on (every access token issued so far
    has expired), `now()` back."""

    def __init__(self) -> None:
        self._patch = pytest.MonkeyPatch()

    def later(self) -> None:
        self._patch.setattr(jwt.api_jwt, "datetime", _AnHourLater)

    def now(self) -> None:
        self._patch.undo()


@pytest.fixture
def clock() -> Iterator[JwtClock]:
    clock = JwtClock()
    try:
        yield clock
    finally:
        clock.now()


class Passes:
    """Records each re-check pass once it has finished, with what it re-checked."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.done: list[frozenset[str]] = []
        self._by: list[list[Any]] = []  # the fronts each pass re-checked: which replica ran it
        self._finished = anyio.Event()
        real = refused_streams.end_refused_streams

        async def recorded(fronts: Any, authenticator: Any, revoked: Iterable[str]) -> None:
            revoked = frozenset(revoked)
            try:
                await real(fronts, authenticator, revoked)
            finally:
                self.done.append(revoked)
                self._by.append(list(fronts))
                self._finished.set()
                self._finished = anyio.Event()

        monkeypatch.setattr(refused_streams, "end_refused_streams", recorded)

    async def periodic(self, gateway: Running) -> None:
        """Run a periodic pass (every stream) on `gateway` now, and wait for it to finish."""
        front = gateway.bastion.front._fronts["vs"]
        before = len(self.done)

        def ran() -> bool:
            passes = zip(self.done[before:], self._by[before:], strict=True)
            return any(EVERY_STREAM in revoked and any(f is front for f in fronts) for revoked, fronts in passes)

        gateway.bastion.front.recheck()
        with anyio.fail_after(20):
            while not ran():
                finished = self._finished
                await finished.wait()


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> Passes:
    return Passes(monkeypatch)


def headers(token: str, session_id: str | None = None) -> dict[str, str]:
    return session_headers(session_id, token)


async def post(gateway: Running, token: str, session_id: str | None, body: dict[str, Any]) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(gateway.mcp_url("vs"), headers=headers(token, session_id), json=body)


async def refreshed(gateway: Running, client: dict[str, Any], tokens: dict[str, Any]) -> dict[str, Any]:
    answer = await token_request(gateway, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@asynccontextmanager
async def session_stream(gateway: Running, token: str) -> AsyncIterator[tuple[str, httpx2.Response]]:
    """A 2025-11-25 session opened with `token`, and its open GET stream."""
    url = gateway.mcp_url("vs")
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=None)) as http:
        session_id = await open_raw_session(http, url, token=token)
        stream_headers = {**headers(token, session_id), "Accept": "text/event-stream"}
        async with opened(http, "GET", url, headers=stream_headers) as stream:
            yield session_id, stream


async def ends(stream: httpx2.Response) -> None:
    """The server ends `stream` (the bound only keeps a failure from hanging)."""
    with anyio.fail_after(20):
        await drain_until_closed(stream)


def guarded_grants(gateway: Running) -> list[str | None]:
    front = gateway.bastion.front._fronts["vs"]
    return [g.principal.oauth_grant if g.principal is not None else None for g in front.guards.values()]


async def test_a_grants_session_outlives_its_expired_access_token_at_a_recheck(
    gateway: Running, clock: JwtClock, passes: Passes
) -> None:
    """The client's token expired while it was idle (or it refreshed at another replica): the
    re-check pass keeps the session and its GET stream, and the refreshed token goes on in it."""
    client = await register(gateway)
    first = await tokens_for(gateway, client, "vs", DEV)
    async with session_stream(gateway, first["access_token"]) as (session_id, stream):
        assert len(guarded_grants(gateway)) == 1 and guarded_grants(gateway)[0] is not None
        clock.later()
        await passes.periodic(gateway)
        assert len(guarded_grants(gateway)) == 1  # still held
        clock.now()  # the client refreshes and comes back to its session
        second = await refreshed(gateway, client, first)
        answer = await post(gateway, second["access_token"], session_id, PING)
        assert answer.status_code == 200, answer.text
        assert answer.headers.get("mcp-session-id") == session_id
        # The stream was open all along: revoking the grant is what ends it.
        form = {"client_id": client["client_id"], "client_secret": client["client_secret"]}
        async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
            revoked = await http.post("/revoke", data={**form, "token": second["refresh_token"]})
        assert revoked.status_code == 200
        await ends(stream)


async def test_a_session_whose_refreshed_tokens_go_to_another_replica_keeps_its_stream(
    clock: JwtClock, passes: Passes
) -> None:
    """Replica a holds the session's GET stream and only ever saw the first token; the client's
    refreshed tokens go to replica b. Once the first expires, a's re-check keeps the session."""
    async with two_replicas() as (a, b):
        client = await register(a)
        first = await tokens_for(a, client, "vs", DEV)
        async with session_stream(a, first["access_token"]) as (session_id, stream):
            second = await refreshed(b, client, first)
            assert (await post(b, second["access_token"], session_id, PING)).status_code == 200
            clock.later()
            await passes.periodic(a)
            clock.now()
            third = await refreshed(b, client, second)
            for replica in (b, a):
                answer = await post(replica, third["access_token"], session_id, PING)
                assert answer.status_code == 200, answer.text
            form = {"client_id": client["client_id"], "client_secret": client["client_secret"]}
            async with httpx2.AsyncClient(base_url=b.base_url) as http:  # revoked at b: a hears of it
                revoked = await http.post("/revoke", data={**form, "token": third["refresh_token"]})
            assert revoked.status_code == 200
            await ends(stream)


@pytest.mark.parametrize(
    ("revoked", "expired"),
    [("refresh_token", False), ("refresh_token", True), ("access_token", False)],
    ids=["refresh-token", "refresh-token-after-the-access-token-expired", "access-token"],
)
async def test_revoking_a_grant_at_revoke_ends_its_streams_without_waiting_for_the_periodic_pass(
    gateway: Running, clock: JwtClock, passes: Passes, revoked: str, expired: bool
) -> None:
    client = await register(gateway)
    tokens = await tokens_for(gateway, client, "vs", DEV)
    other = await tokens_for(gateway, client, "vs", DEV)  # another grant of the same user and client
    async with session_stream(gateway, other["access_token"]) as (other_session, _), session_stream(
        gateway, tokens["access_token"]
    ) as (_, stream):
        if expired:
            clock.later()
        form = {"client_id": client["client_id"], "client_secret": client["client_secret"]}
        async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
            answer = await http.post("/revoke", data={**form, "token": tokens[revoked], "token_type_hint": revoked})
        assert answer.status_code == 200
        await ends(stream)  # the periodic pass is an hour away
        family = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"]
        assert all(EVERY_STREAM not in ids for ids in passes.done)
        assert any(f"sid:{family}" in ids for ids in passes.done)
        assert guarded_grants(gateway) == [json.dumps(grant_of(other["access_token"]), separators=(",", ":"))]
        if not expired:
            assert (await post(gateway, other["access_token"], other_session, PING)).status_code == 200


async def test_revoking_an_expired_access_token_ends_its_grant_and_a_forged_one_revokes_nothing(
    gateway: Running, clock: JwtClock
) -> None:
    """RFC 7009 at /revoke with an access token past its expiry: it was answered 200 and revoked
    nothing, so its grant's refresh token lived on. An expired token whose signature, issuer and
    audience hold still names its grant, and revoking it ends the grant; one signed by another key
    or naming another issuer (signed with the gateway's own key) still revokes nothing, answered
    200 all the same."""
    client = await register(gateway)
    tokens = await tokens_for(gateway, client, "vs", DEV)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
    settings = gateway.bastion.settings
    own_keys = SigningKeys(
        SqlOAuthRepo(gateway.bastion.engine),
        Sealer(load_keys(settings).state),
        rotate_after=settings.oauth_key_rotation,
        token_ttl=settings.oauth_access_token_ttl,
    )
    forged = [
        jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"}),
        await own_keys.sign({**claims, "iss": "https://evil.example"}),
    ]
    form = {"client_id": client["client_id"], "client_secret": client["client_secret"]}
    clock.later()  # every token above has expired
    async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
        for token in forged:
            answer = await http.post("/revoke", data={**form, "token": token})
            assert answer.status_code == 200, answer.text
    clock.now()
    latest = await refreshed(gateway, client, tokens)  # the grant lives: nothing was revoked
    clock.later()
    async with httpx2.AsyncClient(base_url=gateway.base_url) as http:
        answer = await http.post("/revoke", data={**form, "token": tokens["access_token"]})
    assert answer.status_code == 200, answer.text
    clock.now()
    refused = await token_request(gateway, client, grant_type="refresh_token", refresh_token=latest["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert (await post(gateway, latest["access_token"], None, PING)).status_code == 401


def grant_of(token: str) -> list[Any]:
    claims = jwt.decode(token, options={"verify_signature": False})
    return [claims["iss"], claims["client_id"], claims["sid"], claims["sub"], claims["aud"]]


async def test_an_expired_access_token_is_refused_on_every_request_while_its_grant_holds_a_stream(
    gateway: Running, clock: JwtClock, passes: Passes
) -> None:
    client = await register(gateway)
    tokens = await tokens_for(gateway, client, "vs", DEV)
    token = tokens["access_token"]
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    async with session_stream(gateway, token) as (session_id, _):
        clock.later()
        await passes.periodic(gateway)
        assert len(guarded_grants(gateway)) == 1  # the grant lives: its stream stays
        for session, body in ((session_id, PING), (None, initialize), (None, PING)):
            refused = await post(gateway, token, session, body)
            assert refused.status_code == 401, refused.text
        async with httpx2.AsyncClient(timeout=30) as http:
            stream_headers = {**headers(token, session_id), "Accept": "text/event-stream"}
            assert (await http.get(gateway.mcp_url("vs"), headers=stream_headers)).status_code == 401
            assert (await http.delete(gateway.mcp_url("vs"), headers=headers(token, session_id))).status_code == 401


@pytest.mark.parametrize("expired", [False, True], ids=["live-token", "expired-token"])
async def test_a_deactivated_users_grant_bound_stream_ends(
    gateway: Running, clock: JwtClock, expired: bool
) -> None:
    client = await register(gateway)
    tokens = await tokens_for(gateway, client, "vs", DEV)
    users = (await gateway.api.get("/api/v1/users")).json()
    listed = users["items"] if isinstance(users, dict) else users
    [user] = [u for u in listed if u["email"] == DEV]
    async with session_stream(gateway, tokens["access_token"]) as (_, stream):
        if expired:
            clock.later()
        off = await gateway.api.patch(f"/api/v1/users/{user['id']}", json={"active": False})
        assert off.status_code == 200, off.text
        await ends(stream)


@pytest.mark.parametrize("how", ["family revoked in the database", "client forgotten", "refresh token run out"])
async def test_a_dead_grants_stream_ends_at_the_periodic_recheck_though_nothing_announced_it(
    gateway: Running, clock: JwtClock, passes: Passes, how: str
) -> None:
    """What another replica (or time) did to the grant is read from the database by the re-check,
    long after any shared revocation entry is gone: the expired token is no pass to a dead grant."""
    client = await register(gateway)
    tokens = await tokens_for(gateway, client, "vs", DEV)
    family = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"]
    async with session_stream(gateway, tokens["access_token"]) as (_, stream):
        clock.later()
        await passes.periodic(gateway)
        assert len(guarded_grants(gateway)) == 1  # alive so far
        change = {
            "family revoked in the database": update(families).where(families.c.id == family).values(revoked_at=datetime.now(UTC)),
            "client forgotten": delete(clients).where(clients.c.client_id == client["client_id"]),
            "refresh token run out": update(refresh_tokens)
            .where(refresh_tokens.c.family == family)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)),
        }[how]
        async with gateway.bastion.engine.begin() as connection:
            await connection.execute(change)
        await passes.periodic(gateway)
        await ends(stream)


@pytest.mark.parametrize(
    "forged",
    ["signed by another key", "another issuer", "another audience", "without the mcp scope", "alg none"],
)
async def test_past_its_expiry_a_token_is_still_held_to_its_signature_issuer_audience_and_scope(forged: str) -> None:
    """The re-check's JWT check looks past the expiry and nothing else (an expired token of the
    grant passes it; each forgery of one does not)."""
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    jwk = {**jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1", "use": "sig", "alg": "ES256"}

    async def fetch(_url: str) -> dict[str, Any]:
        return {"keys": [jwk]}

    issuer = "https://bastion.example"
    config = OidcConfig(issuer, f"{issuer}/oauth/jwks", None, ("mcp",), "sub", "", "")
    verifier = OidcVerifier(config, issuer, fetch)
    an_hour_ago = int(time.time()) - 3600
    claims = {"iss": issuer, "sub": "u1", "aud": f"{issuer}/servers/vs/mcp", "scope": "mcp", "iat": an_hour_ago, "exp": an_hour_ago + 600}
    expired = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier.verify(expired)
    assert (await verifier.verify_ignoring_expiry(expired)).user == "u1"
    bad = {
        "signed by another key": jwt.encode(claims, other, algorithm="ES256", headers={"kid": "k1"}),
        "another issuer": jwt.encode({**claims, "iss": "https://evil.example"}, key, algorithm="ES256", headers={"kid": "k1"}),
        "another audience": jwt.encode({**claims, "aud": "https://evil.example/mcp"}, key, algorithm="ES256", headers={"kid": "k1"}),
        "without the mcp scope": jwt.encode({**claims, "scope": "openid"}, key, algorithm="ES256", headers={"kid": "k1"}),
        "alg none": jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"}),
    }[forged]
    with pytest.raises((Unauthenticated, Forbidden)):
        await verifier.verify_ignoring_expiry(bad)
