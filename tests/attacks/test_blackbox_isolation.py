"""Black-box attacks on per-caller isolation, by real clients against a running Bastion.

A revoked credential is refused everywhere, long-lived streams it opened included: a 2025-11-25
session's GET stream, an HTTP+SSE (2024-11-05) stream and a 2026-07-28 `subscriptions/listen`
stream all end once their token is revoked, rather than keep telling a revoked caller of list
changes and resource updates, while another caller's streams open beside them go on; an expired
one loses them at the next re-check. A
2026-07-28 upstream's requestState resumes a call only for the caller it was issued to. And a
request that names two sessions (or two credentials) is refused whole, never served in the first
session named while admitted for the last.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from sqlalchemy import update

from bastion.core.errors import BadRequest
from bastion.store.sql.tables import api_tokens
from tests.attacks.test_sse_sessions import post, sse_session
from tests.e2e.test_resource_updates import counter_upstream
from tests.e2e.test_token_scopes import INITIALIZE, create_token
from tests.harness import Running, open_raw_session, serve, session_headers, settings_for

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"


@contextlib.asynccontextmanager
async def gateway_with_counter(tmp_path: Path) -> AsyncIterator[Running]:
    with counter_upstream("stdio") as body:
        async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/bastion.db")) as gateway:
            await gateway.register(body)
            await gateway.create_server({"name": "vs", "upstreams": ["fx"], "visibility": "public"})
            yield gateway


async def revoke(gateway: Running, token_id: str) -> None:
    response = await gateway.api.delete(f"/api/v1/tokens/{token_id}")
    assert response.status_code == 204, response.text


async def drain_until_closed(response: httpx2.Response) -> None:
    """Read a streamed response until the server ends it."""
    async for _ in response.aiter_raw():
        pass


def listen_request(request_id: int = 1) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    filters = {"toolsListChanged": True, "resourceSubscriptions": ["fixture://counter"]}
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "subscriptions/listen",
        "params": {"notifications": filters, "_meta": meta},
    }


def modern_headers(token: str, method: str) -> dict[str, str]:
    return {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "Authorization": f"Bearer {token}",
        "Mcp-Protocol-Version": MODERN,
        "Mcp-Method": method,
    }


@contextlib.asynccontextmanager
async def opened(http: httpx2.AsyncClient, method: str, url: str, **kwargs: Any) -> AsyncIterator[httpx2.Response]:
    async with http.stream(method, url, **kwargs) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        yield response


class Watch:
    """What a stream read in the background has shown: `seen` once its marker arrived, `ended`
    once the server ended the stream."""

    def __init__(self) -> None:
        self.seen, self.ended = anyio.Event(), anyio.Event()


@contextlib.asynccontextmanager
async def watching(response: httpx2.Response, marker: bytes = b"list_changed") -> AsyncIterator[Watch]:
    watch, received = Watch(), b""

    async def read() -> None:
        nonlocal received
        async for chunk in response.aiter_raw():
            received += chunk
            if marker in received:
                watch.seen.set()
        watch.ended.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        yield watch
        tg.cancel_scope.cancel()


async def still_delivers(api: httpx2.AsyncClient, watch: Watch) -> None:
    """The watched stream is open and delivering: change a tool until its list-changed notice arrives
    (no event says when a stream is subscribed, so change it again until one gets through)."""
    with anyio.fail_after(15):
        attempt = 0
        while not watch.seen.is_set():
            assert not watch.ended.is_set(), "the stream of a caller nobody revoked was ended"
            attempt += 1
            changed = await api.patch("/api/v1/tools/fx__echo", json={"description": f"changed {attempt}"})
            assert changed.status_code == 200, changed.text
            with anyio.move_on_after(0.25):
                await watch.seen.wait()


async def test_a_revoked_tokens_session_stream_is_closed(tmp_path: Path) -> None:
    """B's 2025-11-25 session has its GET stream open; the admin revokes B's token: the stream ends
    (it would otherwise carry list changes and resource updates to a caller refused everywhere else)."""
    async with gateway_with_counter(tmp_path) as gateway:
        a, b = await create_token(gateway, servers="*"), await create_token(gateway, servers="*")
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=None)) as http:
            hers = await open_raw_session(http, gateway.mcp_url("vs"), token=a["token"])
            session = await open_raw_session(http, gateway.mcp_url("vs"), token=b["token"])
            headers = {**session_headers(session, b["token"]), "Accept": "text/event-stream"}
            her_headers = {**session_headers(hers, a["token"]), "Accept": "text/event-stream"}
            async with (
                opened(http, "GET", gateway.mcp_url("vs"), headers=her_headers) as her_stream,
                watching(her_stream) as her_watch,
                opened(http, "GET", gateway.mcp_url("vs"), headers=headers) as stream,
            ):
                await revoke(gateway, b["id"])
                with anyio.fail_after(10):
                    await drain_until_closed(stream)
                # A's stream, open beside it, was not ended with it: it still delivers.
                await still_delivers(gateway.api, her_watch)
            ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
            answer = await http.post(gateway.mcp_url("vs"), headers=session_headers(hers, a["token"]), json=ping)
            assert answer.status_code == 200, answer.text
            # And the session is gone with it: its id names nothing now, even for the right token.
            answer = await http.post(
                gateway.mcp_url("vs"),
                headers=session_headers(session, b["token"]),
                json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
            )
            assert answer.status_code in (401, 404), answer.text


async def test_a_revoked_tokens_sse_stream_is_closed(tmp_path: Path) -> None:
    """The same for an HTTP+SSE (2024-11-05) stream: it ends once its token is revoked; A's, opened
    first beside it (a pass ending every stream would end hers before his), still answers on it."""
    async with gateway_with_counter(tmp_path) as gateway:
        a, b = await create_token(gateway, servers="*"), await create_token(gateway, servers="*")
        headers = {"Authorization": f"Bearer {b['token']}", "Accept": "text/event-stream"}
        async with (
            sse_session(gateway, "vs", a["token"]) as hers,
            httpx2.AsyncClient(base_url=gateway.base_url, timeout=httpx2.Timeout(30.0, read=None)) as http,
            opened(http, "GET", "/servers/vs/sse", headers=headers) as stream,
        ):
            chunks = stream.aiter_raw()
            with anyio.fail_after(10):
                first = await anext(chunks)  # the endpoint event: the session is open
            assert b"endpoint" in first
            await revoke(gateway, b["id"])
            with anyio.fail_after(10):
                async for _ in chunks:
                    pass
            assert (await post(hers.messages_url, a["token"], INITIALIZE)).status_code == 202
            with anyio.fail_after(15):
                assert '"serverInfo"' in await hers.next_message()


async def test_a_revoked_tokens_listen_stream_is_closed(tmp_path: Path) -> None:
    """A 2026-07-28 `subscriptions/listen` stream ends once its token is revoked."""
    async with gateway_with_counter(tmp_path) as gateway:
        a, b = await create_token(gateway, servers="*"), await create_token(gateway, servers="*")
        url = gateway.mcp_url("vs")
        async with (
            httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=None)) as http,
            opened(http, "POST", url, headers=modern_headers(a["token"], "subscriptions/listen"), json=listen_request()) as hers,
            watching(hers) as her_watch,
            opened(http, "POST", url, headers=modern_headers(b["token"], "subscriptions/listen"), json=listen_request()) as stream,
        ):
            chunks = stream.aiter_raw()
            with anyio.fail_after(10):
                first = await anext(chunks)  # the acknowledgement: the stream is open
            assert b"subscriptions/acknowledged" in first or b"honored" in first, first
            await revoke(gateway, b["id"])
            with anyio.fail_after(10):
                async for _ in chunks:
                    pass
            await still_delivers(gateway.api, her_watch)  # A's, open beside it, goes on


async def test_an_expired_tokens_session_stream_is_closed(tmp_path: Path) -> None:
    """A token that expires while its session's GET stream is open loses the stream too (at the next
    re-check), as it would a revoked one. It is made with a day to live and expired in the store once
    the stream is open, so how long opening takes on a busy machine does not matter."""
    with counter_upstream("stdio") as body:
        settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/bastion.db", stream_recheck_interval=0.2)
        async with serve(settings) as gateway:
            await gateway.register(body)
            await gateway.create_server({"name": "vs", "upstreams": ["fx"], "visibility": "public"})
            b = await create_token(gateway, servers="*", expires_in=86400)
            async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=None)) as http:
                session = await open_raw_session(http, gateway.mcp_url("vs"), token=b["token"])
                headers = {**session_headers(session, b["token"]), "Accept": "text/event-stream"}
                async with opened(http, "GET", gateway.mcp_url("vs"), headers=headers) as stream:
                    expired = update(api_tokens).where(api_tokens.c.id == b["id"]).values(expires_at=datetime.now(UTC))
                    async with gateway.bastion.engine.begin() as connection:
                        await connection.execute(expired)
                    # Nothing announces an expiry: the periodic re-check finds it once the
                    # verifier's short cache has lapsed. The bound only keeps a failure from hanging.
                    with anyio.fail_after(30):
                        await drain_until_closed(stream)


CONFORMANCE_UPSTREAM = Path(__file__).resolve().parents[1] / "conformance" / "upstream.py"
STATE_TOOL = "cf__test_input_required_result_request_state"


@contextlib.contextmanager
def conformance_upstream() -> Iterator[str]:
    """tests/conformance/upstream.py (a 2026-07-28 server whose tools ask with input_required) on HTTP."""
    proc = subprocess.Popen(
        [sys.executable, str(CONFORMANCE_UPSTREAM), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        assert line.startswith("READY "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def modern_call(http: httpx2.AsyncClient, url: str, token: str, tool: str, **extra: Any) -> dict[str, Any]:
    """One 2026-07-28 tools/call; its JSON-RPC reply."""
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}, **extra, "_meta": meta}}
    response = await http.post(url, json=body, headers={**modern_headers(token, "tools/call"), "Mcp-Name": tool})
    reply: dict[str, Any] = response.json()
    return reply


async def test_another_caller_cannot_answer_a_callers_question_with_its_request_state(tmp_path: Path) -> None:
    """2026-07-28: an upstream's question comes back as `input_required` with an opaque requestState
    that the retry echoes. The upstream binds it to the principal it sees, and behind Bastion every
    caller is the same principal to it: B, holding A's requestState, answered A's question and
    resumed A's call. Bastion binds it to the caller now; only A's own retry resumes it."""
    with conformance_upstream() as upstream_url:
        async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/bastion.db")) as gateway:
            await gateway.register({"name": "cf", "transport": "streamable-http", "url": upstream_url})
            await gateway.create_server({"name": "vs", "upstreams": ["cf"], "visibility": "public"})
            a, b = (await create_token(gateway, servers="*"))["token"], (await create_token(gateway, servers="*"))["token"]
            url = gateway.mcp_url("vs")
            async with httpx2.AsyncClient(timeout=30) as http:
                asked = (await modern_call(http, url, a, STATE_TOOL))["result"]
                assert asked["resultType"] == "input_required", asked
                answer = {"confirm": {"action": "accept", "content": {"ok": True}}}
                retry = {"requestState": asked["requestState"], "inputResponses": answer}
                stolen = await modern_call(http, url, b, STATE_TOOL, **retry)
                assert "error" in stolen, stolen
                assert stolen["error"]["code"] == BadRequest.jsonrpc_code and "requestState" in stolen["error"]["message"]
                own = (await modern_call(http, url, a, STATE_TOOL, **retry))["result"]
                assert own["content"][0]["text"] == "state-ok: confirmed=True", own


async def test_a_second_session_header_does_not_reach_another_callers_session(tmp_path: Path) -> None:
    """B names two sessions, Alice's first and its own last: one layer checked the last (B's own,
    with B's token: admitted) while the SDK served the first, so B set Alice's log level, could open
    her GET stream (her questions, her notices) and end her session. A request naming more than one
    session, protocol version (whatever versions it names) or credential is refused whole (400), and
    Alice's session is untouched."""
    async with gateway_with_counter(tmp_path) as gateway:
        alice, bob = (await create_token(gateway, servers="*"))["token"], (await create_token(gateway, servers="*"))["token"]
        url = gateway.mcp_url("vs")
        set_level = {"jsonrpc": "2.0", "id": 5, "method": "logging/setLevel", "params": {"level": "debug"}}
        async with httpx2.AsyncClient(timeout=10) as http:
            hers = await open_raw_session(http, url, token=alice)
            his = await open_raw_session(http, url, token=bob)
            base = list(session_headers(None, bob).items())
            doubled = [
                [*base, ("Mcp-Protocol-Version", "2025-11-25"), ("Mcp-Session-Id", hers), ("Mcp-Session-Id", his)],
                [*base, ("Mcp-Protocol-Version", "2025-11-25"), ("Mcp-Protocol-Version", "2025-11-25"), ("Mcp-Session-Id", his)],
                [*base, ("Authorization", f"Bearer {bob}"), ("Mcp-Protocol-Version", "2025-11-25"), ("Mcp-Session-Id", his)],
                # One copy naming 2026-07-28 switched the check off while another layer read 2025-11-25.
                [*base, ("Mcp-Protocol-Version", "2025-11-25"), ("Mcp-Protocol-Version", "2026-07-28"), ("Mcp-Session-Id", hers)],
                [*base, ("Mcp-Protocol-Version", "2026-07-28"), ("Mcp-Protocol-Version", "2025-11-25"), ("Mcp-Session-Id", hers)],
            ]
            for headers in doubled:
                answer = await http.post(url, headers=headers, json=set_level)
                assert answer.status_code == 400, answer.text
                assert answer.headers.get("mcp-session-id") is None
                with anyio.fail_after(10):
                    assert (await http.get(url, headers=[*headers, ("Accept", "text/event-stream")])).status_code == 400
                assert (await http.delete(url, headers=headers)).status_code == 400
            answer = await http.post(url, headers=session_headers(hers, alice), json={"jsonrpc": "2.0", "id": 6, "method": "ping"})
            assert answer.status_code == 200, answer.text


async def test_another_callers_session_id_names_nothing(tmp_path: Path) -> None:
    """Probe (held): B naming Alice's session, to post into it, resume its stream, read its GET
    stream or delete it, is answered as for a session that does not exist; hers goes on."""
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/bastion.db")) as gateway:
        await gateway.create_server({"name": "vs", "upstreams": [], "visibility": "public"})
        alice, bob = (await create_token(gateway, servers="*"))["token"], (await create_token(gateway, servers="*"))["token"]
        url, ping = gateway.mcp_url("vs"), {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        async with httpx2.AsyncClient(timeout=10) as http:
            hers = await open_raw_session(http, url, token=alice)
            as_bob = session_headers(hers, bob)
            assert (await http.post(url, headers=as_bob, json=ping)).status_code == 404
            for extra in ({}, {"Last-Event-ID": "_GET_stream/1"}):
                assert (await http.get(url, headers={**as_bob, "Accept": "text/event-stream", **extra})).status_code == 404
            assert (await http.delete(url, headers=as_bob)).status_code == 404
            assert (await http.post(url, headers=session_headers(hers, alice), json=ping)).status_code == 200
