"""Black-box attacks on per-caller isolation across two replicas sharing PostgreSQL and Redis (any
replica serves any client): a token revoked through one replica loses the streams it holds open on
the other."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx2
import pytest

from tests.attacks.test_blackbox_isolation import listen_request, modern_headers, opened, still_delivers, watching
from tests.harness import open_raw_session, session_headers, stdio_fixture
from tests.replicas.cluster import Replica, replicas
from tests.replicas.test_replicas import known_everywhere

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def setup(r1: Replica, r2: Replica) -> tuple[dict[str, str], dict[str, str]]:
    """`fx` behind `vs`, known to both replicas; two callers' tokens, made on replica 1."""
    assert (await r1.api.post("/api/v1/upstreams", json=stdio_fixture("fx"))).status_code == 201
    created = await r1.api.post("/api/v1/servers", json={"name": "vs", "upstreams": ["fx"], "visibility": "public"})
    assert created.status_code == 201, created.text
    await known_everywhere((r2,), "vs")
    tokens = []
    for name in ("alice", "bob"):
        made = await r1.api.post("/api/v1/tokens", json={"name": name, "servers": "*"})
        assert made.status_code == 201, made.text
        tokens.append(made.json())
    return tokens[0], tokens[1]


async def test_a_token_revoked_on_one_replica_loses_its_streams_on_the_other(tmp_path: Path) -> None:
    """Bob's streams on replica 2 end when replica 1 revokes his token; Alice's, open beside them,
    go on delivering, and her session still answers."""
    async with replicas(2, tmp_path) as (r1, r2):
        alice, bob = await setup(r1, r2)
        url1, url2 = f"{r1.base_url}/servers/vs/mcp", f"{r2.base_url}/servers/vs/mcp"
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=None)) as http:
            session = await open_raw_session(http, url1, token=bob["token"])  # opened on replica 1
            hers = await open_raw_session(http, url1, token=alice["token"])
            get = {**session_headers(session, bob["token"]), "Accept": "text/event-stream"}
            her_get = {**session_headers(hers, alice["token"]), "Accept": "text/event-stream"}
            listen = modern_headers(bob["token"], "subscriptions/listen")
            her_listen = modern_headers(alice["token"], "subscriptions/listen")
            async with (
                opened(http, "GET", url2, headers=her_get) as her_stream,  # hers too, on replica 2
                watching(her_stream) as her_watch,
                opened(http, "POST", url2, headers=her_listen, json=listen_request()) as her_listening,
                watching(her_listening) as her_listen_watch,
                opened(http, "GET", url2, headers=get) as stream,  # its GET stream on replica 2
                opened(http, "POST", url2, headers=listen, json=listen_request()) as listening,
            ):
                listened = listening.aiter_raw()
                with anyio.fail_after(10):
                    await anext(listened)  # the acknowledgement: the listen stream is open
                revoked = await r1.api.delete(f"/api/v1/tokens/{bob['id']}")
                assert revoked.status_code == 204, revoked.text
                with anyio.fail_after(15):
                    async for _ in stream.aiter_raw():
                        pass
                    async for _ in listened:
                        pass
                await still_delivers(r1.api, her_watch)
                await still_delivers(r1.api, her_listen_watch)
            ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
            answer = await http.post(url2, headers=session_headers(hers, alice["token"]), json=ping)
            assert answer.status_code == 200, answer.text
