"""Users' connected accounts (per-user OAuth tokens) are stored apart from the upstream's spec, for
where it sends credentials. A change that moved it elsewhere left them stored: a developer who may
edit the upstream could move it in two changes, each harmless alone (drop its OAuth settings while
pointing it at a server of theirs, then put OAuth settings of theirs back), and every connected
user's token went along. Moving an upstream now forgets the accounts; each user connects again."""

from __future__ import annotations

import pytest

from bastion.core.errors import UpstreamNotConnected
from tests.attacks.network import public_upstream
from tests.harness import Running
from tests.identity import login, make_user, signed_in
from tests.vault.test_upstream_user_oauth import _stored_tokens, call_error, connect, provider, upstream_body, whoami

pytestmark = pytest.mark.anyio


async def test_a_developer_cannot_move_users_connected_accounts_in_two_changes(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    async with provider(gw) as (_world, base):
        await make_user(gw, "alice@example.com", "developer", "alpha")
        await make_user(gw, "mallory@example.com", "developer", "alpha")
        body = upstream_body(base, team="alpha", visibility="team")
        await gw.register(body)
        await gw.create_server({"name": "vs", "upstreams": ["up"], "team": "alpha", "visibility": "team"})
        alice = (await login(gw, "alice@example.com")).json()["token"]
        await connect(gw, alice, "alice-gh")
        assert (await whoami(gw, alice))["x-account"] == "alice-gh"
        assert await _stored_tokens(gw) != "[]"

        async with signed_in(gw, "mallory@example.com") as mallory, public_upstream() as elsewhere:
            away = await mallory.patch("/api/v1/upstreams/up", json={"auth": None, "isolation": "shared", "url": elsewhere})
            assert away.status_code == 200, away.text
            assert await _stored_tokens(gw) == "[]"  # alice's account was connected for the old place
            auth = {**body["auth"], "client_secret": "mallory's own", "token_url": f"{base}/token?mallory"}
            back = await mallory.patch("/api/v1/upstreams/up", json={"auth": auth, "isolation": "per_user", "url": body["url"]})
            assert back.status_code == 200, back.text
        # Alice's token did not come back with the OAuth settings: she connects again, knowingly.
        assert await call_error(gw, alice) == UpstreamNotConnected.jsonrpc_code


async def test_an_upstream_changed_in_place_keeps_its_connected_accounts(any_db_gateway: Running) -> None:
    gw = any_db_gateway
    async with provider(gw) as (_world, base):
        await make_user(gw, "alice@example.com", "developer", "alpha")
        await gw.register(upstream_body(base, team="alpha", visibility="team"))
        await gw.create_server({"name": "vs", "upstreams": ["up"], "team": "alpha", "visibility": "team"})
        alice = (await login(gw, "alice@example.com")).json()["token"]
        await connect(gw, alice, "alice-gh")
        changed = await gw.api.patch("/api/v1/upstreams/up", json={"visibility": "public", "headers": {"X-Trace": "1"}})
        assert changed.status_code == 200, changed.text
        assert (await whoami(gw, alice))["x-account"] == "alice-gh"
