"""Edges of the per-caller bound on open MCP sessions (web/session_bounds.py), found in review:
- the session chosen to make way for its caller's new one kept admitting requests until the new
  session was established, and was then closed under whatever had started on it meanwhile; now it
  admits none from the moment it is chosen (404, and it ends), and a session whose `initialize` is
  still being served is in use, so another `initialize` of its caller cannot choose it;
- an `initialize` answered 200 with a JSON-RPC error (bad params) counted as an established session:
  it closed one of the caller's sessions and took a place in the server's table; now only an
  accepted `initialize` with its session id issued counts;
- the 429 (caller at its bound) and the 503 (server's table full) said nothing of when to retry;
  both carry Retry-After now, beside their JSON-RPC error;
- HTTP+SSE streams were not counted at all: one token could open any number; now each open stream
  counts against its caller's bound and, being in use, is never the session closed for a new one;
  the server's bound did not count them either: each open stream takes a place in its table now."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http import EventCallback, EventId, EventStore, StreamId
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolRequestParams, JSONRPCMessage
from starlette.types import Receive, Scope, Send

import bastion.web.session_manager as session_manager_module
from bastion.core.errors import TooManyRequests
from bastion.store.events import MemoryEventStore
from bastion.web.session_bounds import SessionBounds
from bastion.web.session_manager import SessionManager
from tests.e2e.test_token_scopes import create_token
from tests.harness import Running, open_raw_session, serve, serve_asgi, session_headers, settings_for, stdio_fixture

pytestmark = pytest.mark.anyio

PING = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
CALL = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "wait", "arguments": {}}}
CLIENT_INFO = {"name": "t", "version": "1"}


def initialize_body(params: dict[str, Any] | None = None) -> dict[str, Any]:
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": CLIENT_INFO} if params is None else params
    return {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}


@dataclass
class Gate:
    """Holds the next session opened, at the first event its store keeps (its `initialize`'s priming
    event, minted before the request is dispatched), until released."""

    armed: bool = False
    reached: anyio.Event = field(default_factory=anyio.Event)
    release: anyio.Event = field(default_factory=anyio.Event)


class _GatedEvents(EventStore):
    def __init__(self, inner: EventStore, gate: Gate) -> None:
        self._inner = inner
        self._gate: Gate | None = gate

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.reached.set()
            await gate.release.wait()
        return await self._inner.store_event(stream_id, message)

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        return await self._inner.replay_events_after(last_event_id, send_callback)


@dataclass
class Served:
    manager: SessionManager
    bounds: SessionBounds
    url: str
    gate: Gate
    started: anyio.Event
    """Set once the `wait` tool has started on some session."""
    finish: anyio.Event
    """Lets the `wait` tool end."""


@asynccontextmanager
async def served(per_caller: int | None, max_sessions: int | None = 100) -> AsyncIterator[Served]:
    """Bastion's session manager, callers bounded to `per_caller` sessions, before a server whose
    one tool (`wait`) runs until `finish` is set. Requests carry no credential: one caller."""
    started, finish = anyio.Event(), anyio.Event()

    async def wait(_ctx: ServerRequestContext[Any], _params: CallToolRequestParams) -> dict[str, Any]:
        started.set()
        await finish.wait()
        return {"content": [{"type": "text", "text": "done"}]}

    server: Server[Any] = Server("waiting")
    server.add_request_handler("tools/call", CallToolRequestParams, wait)
    store, gate = MemoryEventStore(), Gate()

    def events_for(session_id: str) -> EventStore:
        inner = store.for_session(session_id)
        if not gate.armed:
            return inner
        gate.armed = False
        return _GatedEvents(inner, gate)

    bounds = SessionBounds(per_caller)
    manager = SessionManager(
        server,
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_body_size=1 << 20,
        events_for=events_for,
        idle_timeout=None,
        max_sessions=max_sessions,
        bounds=bounds,
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await manager.handle_request(scope, receive, send)

    async with manager.run(), serve_asgi(app) as base:
        try:
            yield Served(manager, bounds, f"{base}/mcp", gate, started, finish)
        finally:
            gate.release.set()
            finish.set()


async def ping(http: httpx2.AsyncClient, url: str, session_id: str, token: str | None = None) -> int:
    return (await http.post(url, headers=session_headers(session_id, token), json=PING)).status_code


def _session_of(response: httpx2.Response) -> str:
    assert response.status_code == 200, response.text
    assert '"result"' in response.text, response.text
    return response.headers["mcp-session-id"]


async def test_the_session_chosen_to_make_way_admits_no_request_while_the_new_one_is_opened() -> None:
    async with served(per_caller=2) as s, httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=None)) as http:
        with anyio.fail_after(30):
            older, newer = [await open_raw_session(http, s.url, token=None) for _ in range(2)]
            opened: list[httpx2.Response] = []
            async with anyio.create_task_group() as tg:
                s.gate.armed = True

                async def initialize() -> None:
                    opened.append(await http.post(s.url, headers=session_headers(token=None), json=initialize_body()))

                tg.start_soon(initialize)
                await s.gate.reached.wait()  # counted, `older` chosen to make way; not yet established
                # A call on the chosen session now is refused outright: it would have run until the
                # new session was established, and been cut there.
                async with http.stream("POST", s.url, headers=session_headers(older, None), json=CALL) as call:
                    assert call.status_code == 404
                    assert "Session not found" in (await call.aread()).decode()
                s.gate.release.set()
            assert not s.started.is_set()
            fresh = _session_of(opened[0])
            assert await ping(http, s.url, older) == 404
            assert await ping(http, s.url, newer) == 200
            assert await ping(http, s.url, fresh) == 200
            assert s.bounds.counts() == {"anonymous": 2}


async def test_a_session_whose_initialize_is_being_served_is_never_another_initializes_victim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held, release = anyio.Event(), anyio.Event()
    serve_session = session_manager_module.serve_session
    calls: list[str | None] = []

    async def slow_to_start(*args: Any, **kwargs: Any) -> None:
        """The first session's server task starts only once released (an `initialize` in progress)."""
        calls.append(kwargs.get("session_id"))
        if len(calls) == 1:
            held.set()
            await release.wait()
        await serve_session(*args, **kwargs)

    monkeypatch.setattr(session_manager_module, "serve_session", slow_to_start)
    async with served(per_caller=1) as s, httpx2.AsyncClient(timeout=30) as http:
        with anyio.fail_after(30):
            opened: list[httpx2.Response] = []
            try:
                async with anyio.create_task_group() as tg:

                    async def initialize() -> None:
                        opened.append(await http.post(s.url, headers=session_headers(token=None), json=initialize_body()))

                    tg.start_soon(initialize)
                    await held.wait()
                    second = await http.post(s.url, headers=session_headers(token=None), json=initialize_body())
                    assert second.status_code == TooManyRequests.http_status, second.text
                    release.set()
            finally:
                release.set()
            first = _session_of(opened[0])
            assert await ping(http, s.url, first) == 200
            assert s.bounds.counts() == {"anonymous": 1}


async def test_a_request_running_on_a_session_is_never_cut_for_a_new_one() -> None:
    async with served(per_caller=2) as s, httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=None)) as http:
        with anyio.fail_after(30):
            busy, idle = [await open_raw_session(http, s.url, token=None) for _ in range(2)]
            async with http.stream("POST", s.url, headers=session_headers(busy, None), json=CALL) as call:
                assert call.status_code == 200
                await s.started.wait()
                # `busy` is the least recently used, but in use: `idle` is the one closed.
                fresh = _session_of(await http.post(s.url, headers=session_headers(token=None), json=initialize_body()))
                assert await ping(http, s.url, idle) == 404
                # With every session in use, the next one is refused and nothing is cut.
                async with http.stream("POST", s.url, headers=session_headers(fresh, None), json=CALL) as other:
                    assert other.status_code == 200
                    refused = await http.post(s.url, headers=session_headers(token=None), json=initialize_body())
                    assert refused.status_code == TooManyRequests.http_status
                    s.finish.set()
                    assert "done" in (await other.aread()).decode()
                assert "done" in (await call.aread()).decode()
            assert await ping(http, s.url, busy) == 200


async def bad_initialize(http: httpx2.AsyncClient, s: Served, open_before: int) -> None:
    """An `initialize` the SDK answers 200 with a JSON-RPC error in the body (its params are bad);
    returns once the manager is done with it (the client may read the answer a moment sooner)."""
    bad = await http.post(s.url, headers=session_headers(token=None), json=initialize_body({"capabilities": 1}))
    assert bad.status_code == 200, bad.text
    assert '"error"' in bad.text and '"result"' not in bad.text
    while s.manager.session_counts()[0] > open_before:
        await anyio.sleep(0.01)
    if "mcp-session-id" in bad.headers:
        assert await ping(http, s.url, bad.headers["mcp-session-id"]) == 404


async def test_an_initialize_answered_with_an_error_closes_none_of_the_callers_sessions() -> None:
    async with served(per_caller=2) as s, httpx2.AsyncClient(timeout=30) as http:
        with anyio.fail_after(30):
            sessions = [await open_raw_session(http, s.url, token=None) for _ in range(2)]
            await bad_initialize(http, s, 2)
            for session_id in sessions:
                assert await ping(http, s.url, session_id) == 200
            assert s.bounds.counts() == {"anonymous": 2}


async def test_initializes_answered_with_an_error_take_no_place_in_the_servers_table() -> None:
    async with served(per_caller=None, max_sessions=2) as s, httpx2.AsyncClient(timeout=30) as http:
        with anyio.fail_after(30):
            await open_raw_session(http, s.url, token=None)
            for _ in range(3):
                await bad_initialize(http, s, 1)
            _session_of(await http.post(s.url, headers=session_headers(token=None), json=initialize_body()))


async def test_the_refusals_of_a_new_session_say_when_to_retry() -> None:
    async with served(per_caller=1, max_sessions=2) as s, httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=None)) as http:
        with anyio.fail_after(30):
            first = await open_raw_session(http, s.url, token=None)
            async with http.stream("POST", s.url, headers=session_headers(first, None), json=CALL) as call:
                assert call.status_code == 200
                await s.started.wait()
                refused = await http.post(s.url, headers=session_headers(token=None), json=initialize_body())
                assert refused.status_code == 429
                assert int(refused.headers["retry-after"]) > 0
                body = refused.json()
                assert body["id"] is None
                assert body["error"]["code"] == TooManyRequests.jsonrpc_code
                assert "at most 1" in body["error"]["message"]
                assert body["error"]["data"]["retry_after"] == int(refused.headers["retry-after"])
                s.finish.set()
                await call.aread()
    async with served(per_caller=None, max_sessions=1) as s, httpx2.AsyncClient(timeout=30) as http:
        with anyio.fail_after(30):
            await open_raw_session(http, s.url, token=None)
            full = await http.post(s.url, headers=session_headers(token=None), json=initialize_body())
            assert full.status_code == 503
            assert int(full.headers["retry-after"]) > 0
            assert full.json()["error"]["message"] == "Too many open sessions"


# The gateway: the fast path, and HTTP+SSE streams.


@asynccontextmanager
async def gateway(tmp_path: Path, per_caller: int, per_server: int) -> AsyncIterator[Running]:
    settings = settings_for(
        f"sqlite+aiosqlite:///{tmp_path}/b.db", mcp_sessions_per_caller=per_caller, mcp_sessions_per_server=per_server
    )
    async with serve(settings) as running:
        await running.register(stdio_fixture("fx"))
        await running.create_server({"name": "vs", "upstreams": ["fx"], "visibility": "public"})
        yield running


def bounds_of(running: Running) -> SessionBounds:
    bounds = running.bastion.front._bounds
    assert isinstance(bounds, SessionBounds)
    return bounds


@contextmanager
def opening(bounds: SessionBounds, caller: str) -> Iterator[None]:
    """As while an `initialize` of `caller` is being served: its session counted, a victim chosen."""
    seat, victim = bounds.take(caller, _nothing)
    try:
        yield
    finally:
        bounds.leave(seat)
        if victim is not None:
            bounds.give_back(victim)


async def _nothing() -> None:
    return None


async def test_a_call_on_the_fast_path_is_refused_on_a_session_chosen_to_make_way(tmp_path: Path) -> None:
    async with gateway(tmp_path, 2, 10) as running:
        alice = (await create_token(running, servers="*"))["token"]
        url = running.mcp_url("vs")
        echo = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "fx__echo", "arguments": {"text": "x"}}}
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(timeout=30) as http:
                older, newer = [await open_raw_session(http, url, token=alice) for _ in range(2)]
                assert (await http.post(url, headers=session_headers(older, alice), json=echo)).status_code == 200
                assert await ping(http, url, newer, alice) == 200  # `older` is the least recently used
                bounds = bounds_of(running)
                (caller,) = bounds.counts()
                with opening(bounds, caller):
                    refused = await http.post(url, headers=session_headers(older, alice), json=echo)
                    assert refused.status_code == 404
                    assert await ping(http, url, newer, alice) == 200
                assert await ping(http, url, older, alice) == 404  # it ended for good


@asynccontextmanager
async def sse_stream(http: httpx2.AsyncClient, running: Running, token: str) -> AsyncIterator[httpx2.Response]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    async with http.stream("GET", f"{running.base_url}/servers/vs/sse", headers=headers) as response:
        yield response


async def test_http_sse_streams_count_against_their_callers_bound_and_are_never_closed_for_a_new_session(
    tmp_path: Path,
) -> None:
    async with gateway(tmp_path, 2, 10) as running:
        alice = (await create_token(running, servers="*"))["token"]
        bob = (await create_token(running, servers="*"))["token"]
        url = running.mcp_url("vs")
        bounds = bounds_of(running)
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=None)) as http, AsyncExitStack() as stack:
                idle = await open_raw_session(http, url, token=alice)
                first = await stack.enter_async_context(sse_stream(http, running, alice))
                assert first.status_code == 200
                # At her bound: her idle session makes way for a second stream; the open stream stays.
                second = await stack.enter_async_context(sse_stream(http, running, alice))
                assert second.status_code == 200
                assert await ping(http, url, idle, alice) == 404
                async with sse_stream(http, running, alice) as third:
                    assert third.status_code == TooManyRequests.http_status
                    assert int(third.headers["retry-after"]) > 0
                    assert (await third.aread()) and third.json()["error"]["code"] == TooManyRequests.jsonrpc_code
                refused = await http.post(url, headers=session_headers(token=alice), json=initialize_body())
                assert refused.status_code == TooManyRequests.http_status
                # Nobody else notices.
                async with sse_stream(http, running, bob) as others:
                    assert others.status_code == 200
                await open_raw_session(http, url, token=bob)
                # A stream that ends leaves its place.
                (caller,) = [c for c, n in bounds.counts().items() if n == 2]
                await stack.aclose()
                while bounds.counts().get(caller):
                    await anyio.sleep(0.01)
                await open_raw_session(http, url, token=alice)


async def test_http_sse_streams_take_places_in_their_servers_table(tmp_path: Path) -> None:
    """The server's bound (503, Retry-After) counted 2025-11-25 sessions only: HTTP+SSE streams of
    many callers, each within its own bound, could hold any number open on one server. Each open
    stream takes a place in the server's table now, as a session does, and gives it back when it ends."""
    async with gateway(tmp_path, 1, 2) as running:
        alice, bob, carol = [(await create_token(running, servers="*"))["token"] for _ in range(3)]
        url = running.mcp_url("vs")
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=None)) as http, AsyncExitStack() as stack:
                for token in (alice, bob):
                    opened = await stack.enter_async_context(sse_stream(http, running, token))
                    assert opened.status_code == 200
                async with sse_stream(http, running, carol) as full:
                    assert full.status_code == 503
                    assert int(full.headers["retry-after"]) == 30
                    assert (await full.aread()) and full.json()["error"]["message"] == "Too many open sessions"
                refused = await http.post(url, headers=session_headers(token=carol), json=initialize_body())
                assert refused.status_code == 503 and int(refused.headers["retry-after"]) == 30
                await stack.aclose()  # both streams end: their places are free again
                bounds = bounds_of(running)
                while bounds.counts():
                    await anyio.sleep(0.01)
                await open_raw_session(http, url, token=carol)
                async with sse_stream(http, running, alice) as second:
                    assert second.status_code == 200
                    async with sse_stream(http, running, bob) as third:
                        assert third.status_code == 503  # one session and one stream fill it
