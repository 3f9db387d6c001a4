"""A session's resource subscriptions end with it: however a 2025-11-25 session ends (DELETE, idle
expiry, a revoked token, an HTTP+SSE client gone, deleted through another replica) Bastion releases
what it watched, as it does what a closed `subscriptions/listen` stream named, and the upstream is told
`resources/unsubscribe` once no other caller on that upstream session watches the resource.

The upstream is a real MCP server (tests/upstreams/watched.py) over Streamable HTTP that records each
subscribe and unsubscribe Bastion sends it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.e2e.test_replicas import running_cluster
from tests.e2e.test_resource_updates import Updates, subscribe
from tests.harness import Running, open_raw_session, serve, session_headers, settings_for
from tests.upstreams.watched import WatchedUpstream

pytestmark = pytest.mark.anyio

A, B = "watched://a", "watched://b"
SUBSCRIBE, UNSUBSCRIBE = "resources/subscribe", "resources/unsubscribe"


@asynccontextmanager
async def watched_gateway(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[Running, WatchedUpstream]]:
    """Bastion with the recording upstream `up` behind the virtual server `vs`."""
    async with WatchedUpstream().serving() as upstream:
        async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/bastion.db", **settings)) as gateway:
            await gateway.register(upstream.body("up"))
            await gateway.create_server({"name": "vs", "upstreams": ["up"]})
            yield gateway, upstream


async def raw_subscribe(http: httpx2.AsyncClient, url: str, session_id: str, uri: str, token: str | None = None) -> None:
    headers = session_headers(session_id) if token is None else session_headers(session_id, token)
    request = {"jsonrpc": "2.0", "id": 2, "method": SUBSCRIBE, "params": {"uri": uri}}
    answer = await http.post(url, headers=headers, json=request)
    assert answer.status_code == 200 and '"result"' in answer.text, answer.text


async def watchers_become(gateway: Running, uri: str, count: int) -> None:
    """Until `count` sessions on this replica watch `uri` (white box: a session's release has no
    outward sign until the last one goes, so this is polled, bounded)."""
    front = gateway.bastion.front._fronts["vs"]
    with anyio.fail_after(10):
        while len(front.resource_subs.get(uri) or {}) != count:
            await anyio.sleep(0.02)


async def test_deleting_a_session_unsubscribes_upstream(tmp_path: Path) -> None:
    async with watched_gateway(tmp_path) as (gateway, upstream), httpx2.AsyncClient(timeout=30) as http:
        url = gateway.mcp_url("vs")
        session_id = await open_raw_session(http, url)
        await raw_subscribe(http, url, session_id, A)
        assert upstream.count(SUBSCRIBE, A) == 1
        assert (await http.delete(url, headers=session_headers(session_id))).status_code == 200
        with anyio.fail_after(10):
            await upstream.wait_for(UNSUBSCRIBE, A)
        assert upstream.watching(A) == set()
        await watchers_become(gateway, A, 0)


async def test_a_shared_upstream_subscription_lasts_until_its_last_watcher_leaves(tmp_path: Path) -> None:
    first_updates, second_updates, later_updates = Updates(), Updates(), Updates()
    async with watched_gateway(tmp_path) as (gateway, upstream):
        async with gateway.client("vs", message_handler=second_updates.handler) as second:
            async with gateway.client("vs", message_handler=first_updates.handler) as first:
                await subscribe(first, A)
                await subscribe(second, A)
                assert upstream.count(SUBSCRIBE, A) == 1, "one upstream subscription for both callers"
            await watchers_become(gateway, A, 1)  # the first has left (its session deleted) and was released
            assert upstream.count(UNSUBSCRIBE, A) == 0, "unsubscribed while another caller still watches"
            assert await upstream.update(A) == 1
            with anyio.fail_after(10):
                await second_updates.wait_for(1)
        with anyio.fail_after(10):
            await upstream.wait_for(UNSUBSCRIBE, A)
        assert upstream.count(SUBSCRIBE, A) == 1 and upstream.watching(A) == set()

        # A later caller on the same upstream session hears only of what it subscribed to itself, even
        # from an upstream that goes on announcing the resource nobody watches any more.
        async with gateway.client("vs", message_handler=later_updates.handler) as later:
            await subscribe(later, B)
            assert await upstream.update(A, even_unsubscribed=True) >= 1
            assert await upstream.update(B) == 1
            with anyio.fail_after(10):
                await later_updates.wait_for(1)
        assert later_updates.uris == [B]


async def test_a_revoked_tokens_session_unsubscribes_upstream(tmp_path: Path) -> None:
    async with watched_gateway(tmp_path) as (gateway, upstream), httpx2.AsyncClient(timeout=30) as http:
        created = await gateway.api.post("/api/v1/tokens", json={"name": "b", "servers": ["vs"]})
        assert created.status_code == 201, created.text
        token = created.json()
        url = gateway.mcp_url("vs")
        session_id = await open_raw_session(http, url, token=token["token"])
        await raw_subscribe(http, url, session_id, A, token=token["token"])
        assert upstream.count(SUBSCRIBE, A) == 1
        assert (await gateway.api.delete(f"/api/v1/tokens/{token['id']}")).status_code == 204
        with anyio.fail_after(10):
            await upstream.wait_for(UNSUBSCRIBE, A)
        await watchers_become(gateway, A, 0)


async def test_an_idle_session_unsubscribes_upstream_when_it_expires(tmp_path: Path) -> None:
    async with (
        watched_gateway(tmp_path, session_idle_ttl=0.5) as (gateway, upstream),
        httpx2.AsyncClient(timeout=30) as http,
    ):
        url = gateway.mcp_url("vs")
        session_id = await open_raw_session(http, url)
        await raw_subscribe(http, url, session_id, A)
        with anyio.fail_after(10):
            await upstream.wait_for(UNSUBSCRIBE, A)
        await watchers_become(gateway, A, 0)
        ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
        assert (await http.post(url, headers=session_headers(session_id), json=ping)).status_code == 404


async def test_an_sse_client_that_disconnects_unsubscribes_upstream(tmp_path: Path) -> None:
    async with watched_gateway(tmp_path) as (gateway, upstream):
        async with gateway.client("vs", transport="sse") as client:
            await subscribe(client, A)
            assert upstream.count(SUBSCRIBE, A) == 1
        with anyio.fail_after(10):
            await upstream.wait_for(UNSUBSCRIBE, A)
        await watchers_become(gateway, A, 0)


async def test_a_closed_listen_stream_unsubscribes_upstream_unless_a_session_still_watches(tmp_path: Path) -> None:
    async with watched_gateway(tmp_path) as (gateway, upstream):
        async with gateway.client("vs") as legacy:
            await subscribe(legacy, A)
            async with gateway.client("vs", mode="2026-07-28") as modern:
                async with modern.listen(resource_subscriptions=[A, B]) as subscription:
                    assert subscription.honored.resource_subscriptions == [A, B]
                    assert upstream.count(SUBSCRIBE, A) == 1 and upstream.count(SUBSCRIBE, B) == 1
            with anyio.fail_after(10):
                await upstream.wait_for(UNSUBSCRIBE, B)
            assert upstream.count(UNSUBSCRIBE, A) == 0, "the legacy session still watches it"
        with anyio.fail_after(10):
            await upstream.wait_for(UNSUBSCRIBE, A)


async def test_a_session_two_replicas_served_is_released_on_both_when_deleted() -> None:
    """Each replica that serves a shared session subscribes its own upstream session for what the
    session's record lists; deleting the session (through either) releases both (the other replica
    hears of it on the store's change feed)."""
    async with (
        WatchedUpstream().serving() as upstream,
        running_cluster(upstream.body("up"), count=2) as cluster,
        httpx2.AsyncClient(timeout=30) as http,
    ):
        session_id = await open_raw_session(http, cluster.url(0))
        await raw_subscribe(http, cluster.url(0), session_id, A)
        ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
        # Replica 1 restores the session for this request, with its subscription, on its own upstream session.
        assert (await http.post(cluster.url(1), headers=session_headers(session_id), json=ping)).status_code == 200
        assert upstream.count(SUBSCRIBE, A) == 2 and len(upstream.watching(A)) == 2
        assert (await http.delete(cluster.url(0), headers=session_headers(session_id))).status_code == 200
        with anyio.fail_after(15):
            await upstream.wait_for(UNSUBSCRIBE, A, count=2)
        assert upstream.watching(A) == set()


async def test_a_subscribe_the_client_cancels_is_given_back_upstream(tmp_path: Path) -> None:
    """The client gives up while Bastion waits for the upstream to take the subscription: nobody
    watches, so what Bastion asked for is given back (it was counted, and never released, before)."""
    async with watched_gateway(tmp_path) as (gateway, upstream), httpx2.AsyncClient(timeout=30) as http:
        url = gateway.mcp_url("vs")
        session_id = await open_raw_session(http, url)
        upstream.gate = anyio.Event()
        request = {"jsonrpc": "2.0", "id": 2, "method": SUBSCRIBE, "params": {"uri": A}}
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(http.post, url, headers=session_headers(session_id), json=request))
            with anyio.fail_after(10):
                await upstream.wait_for(SUBSCRIBE, A)
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}}
            assert (await http.post(url, headers=session_headers(session_id), json=cancel)).status_code == 202
            with anyio.fail_after(10):
                await upstream.wait_for(UNSUBSCRIBE, A)
            upstream.gate.set()
            tg.cancel_scope.cancel()
        await watchers_become(gateway, A, 0)

        # Counted right from then on: a subscription made now is still released with its session.
        await raw_subscribe(http, url, session_id, A)
        assert upstream.count(SUBSCRIBE, A) == 2
        assert (await http.delete(url, headers=session_headers(session_id))).status_code == 200
        with anyio.fail_after(10):
            await upstream.wait_for(UNSUBSCRIBE, A, count=2)


async def test_a_changed_upstream_is_subscribed_again_for_the_callers_still_watching(tmp_path: Path) -> None:
    """Changing an upstream replaces Bastion's session with it: what callers still watch is subscribed
    on the new one too (before, updates stopped for good while Bastion still counted the interest)."""
    updates = Updates()
    async with (
        watched_gateway(tmp_path) as (gateway, upstream),
        gateway.client("vs", message_handler=updates.handler) as client,
    ):
        await subscribe(client, A)
        before = upstream.watching(A)
        changed = await gateway.api.patch("/api/v1/upstreams/up", json={"headers": {"X-Changed": "1"}})
        assert changed.status_code == 200, changed.text
        with anyio.fail_after(10):
            await upstream.wait_for(SUBSCRIBE, A, count=2)
        assert upstream.watching(A) - before, "subscribed on the new upstream session"
        await upstream.update(A)
        with anyio.fail_after(10):
            await updates.wait_for(1)
        assert updates.uris == [A]
