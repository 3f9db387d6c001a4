"""Attack class: a second request whose JSON-RPC id is one still in flight. On a 2025-11-25 session
the SDK keys a request's stream, and routes its answer and progress, by id alone: the second
request took the first one's progress and answer, its own answer was lost, and the first one's
stream stayed open for good. A request whose id is in flight on its session, on the SDK path or the
fast path, is now refused at once (400, -32600 naming the id), and the first one is answered as
usual; on an HTTP+SSE session too, where both were answered on the one stream with that id.
2026-07-28 requests have no session: each is its own, whatever its id."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.attacks.modern import MODERN
from tests.e2e.test_token_scopes import create_token
from tests.harness import TOKEN, Running, open_raw_session, serve, session_headers, settings_for, stdio_fixture

pytestmark = [pytest.mark.anyio, pytest.mark.database_free]

SLOW = {"name": "fx__slow", "arguments": {"seconds": 3}}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("duplicate-ids")
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp}/b.db")) as running:
        await running.register(stdio_fixture("fx"))
        await running.create_server({"name": "vs", "upstreams": ["fx"]})
        yield running


def _messages(text: str) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an SSE body (or the one message of a JSON body)."""
    if text.lstrip().startswith("{"):
        return [json.loads(text)]
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]


def _refused(response: httpx2.Response, request_id: Any) -> None:
    assert response.status_code == 400, response.text
    reply = response.json()
    assert reply["id"] is None and reply["error"]["code"] == -32600, reply
    assert json.dumps(request_id) in reply["error"]["message"] and "in flight" in reply["error"]["message"], reply


async def _reused(http: httpx2.AsyncClient, url: str, session_id: str, request_id: Any) -> None:
    """The id is free again once its request has ended on the server (its POST may end a moment after
    the client has read the answer: until then the id is still in flight)."""
    for _ in range(500):
        again = await http.post(url, headers=session_headers(session_id), json={"jsonrpc": "2.0", "id": request_id, "method": "ping"})
        if again.status_code == 200:
            assert _messages(again.text)[-1] == {"jsonrpc": "2.0", "id": request_id, "result": {}}, again.text
            return
        _refused(again, request_id)
        await anyio.sleep(0.02)
    raise AssertionError(f"request id {request_id!r} stayed in flight")


async def _running_slow(http: httpx2.AsyncClient, url: str, session_id: str) -> None:
    """Wait until the upstream runs a `slow` call (the fast path answers only at the end)."""
    for attempt in range(500):
        body = {"jsonrpc": "2.0", "id": f"probe-{attempt}", "method": "tools/call", "params": {"name": "fx__slow_running", "arguments": {}}}
        reply = (await http.post(url, headers=session_headers(session_id), json=body)).json()
        if reply["result"]["content"][0]["text"] != "0":
            return
        await anyio.sleep(0.02)
    raise AssertionError("the slow call never started")


@pytest.mark.parametrize("second_id", [7, "7"], ids=["same-id", "same-id-as-string"])
async def test_an_id_in_flight_on_the_sdk_path_is_refused(gateway: Running, second_id: Any) -> None:
    url = gateway.mcp_url("vs")
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=60)) as http:
        session_id = await open_raw_session(http, url)
        # A progress token sends the call down the SDK path (its answer is a stream).
        first = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {**SLOW, "_meta": {"progressToken": "A"}}}
        async with http.stream("POST", url, headers=session_headers(session_id), json=first) as streaming:
            assert streaming.status_code == 200
            second = {"jsonrpc": "2.0", "id": second_id, "method": "tools/call", "params": {**SLOW, "_meta": {"progressToken": "B"}}}
            _refused(await http.post(url, headers=session_headers(session_id), json=second), second_id)
            answers = _messages((await streaming.aread()).decode())
        replies = [m for m in answers if "id" in m]
        assert len(replies) == 1 and replies[0]["id"] == 7, answers
        assert replies[0]["result"]["content"][0]["text"] == "done", answers
        await _reused(http, url, session_id, second_id)


async def test_a_cancelled_request_frees_its_id(gateway: Running) -> None:
    url = gateway.mcp_url("vs")
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=60)) as http:
        session_id = await open_raw_session(http, url)
        first = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {**SLOW, "_meta": {"progressToken": "A"}}}
        async with http.stream("POST", url, headers=session_headers(session_id), json=first) as streaming:
            assert streaming.status_code == 200
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}
            assert (await http.post(url, headers=session_headers(session_id), json=cancel)).status_code == 202
            answers = _messages((await streaming.aread()).decode())
        assert [m["error"]["code"] for m in answers if "id" in m] == [-32800], answers
        await _reused(http, url, session_id, 7)


async def test_an_id_in_flight_on_the_fast_path_is_refused(gateway: Running) -> None:
    url = gateway.mcp_url("vs")
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=60)) as http:
        session_id = await open_raw_session(http, url)
        first = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": SLOW}
        answered: list[httpx2.Response] = []

        async def call() -> None:
            answered.append(await http.post(url, headers=session_headers(session_id), json=first))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await _running_slow(http, url, session_id)
            # On the SDK path (a progress token, or a version header the fast path leaves to the
            # SDK, or none) or the fast path: either way refused.
            headers = session_headers(session_id)
            unversioned = {k: v for k, v in headers.items() if k != "Mcp-Protocol-Version"}
            for params, sent in (
                (SLOW, headers),
                ({**SLOW, "_meta": {"progressToken": "B"}}, headers),
                (SLOW, {**headers, "Mcp-Protocol-Version": "2025-06-18"}),
                (SLOW, unversioned),
            ):
                second = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
                _refused(await http.post(url, headers=sent, json=second), 7)
        reply = _messages(answered[0].text)[-1]
        assert reply["id"] == 7 and reply["result"]["content"][0]["text"] == "done", reply
        await _reused(http, url, session_id, 7)


async def test_stateless_requests_with_one_id_are_each_their_own(gateway: Running) -> None:
    """2026-07-28: no session, so two requests in flight with one id each get their own progress and answer."""
    url = gateway.mcp_url("vs")
    headers = {
        "authorization": f"Bearer {TOKEN}",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": "fx__progress",
    }
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    seen: dict[str, list[dict[str, Any]]] = {}

    async def call(http: httpx2.AsyncClient, token: str, steps: int) -> None:
        params = {"name": "fx__progress", "arguments": {"steps": steps}, "_meta": {**meta, "progressToken": token}}
        body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
        response = await http.post(url, headers=headers, json=body)
        assert response.status_code == 200, response.text
        seen[token] = _messages(response.text)

    async with httpx2.AsyncClient(timeout=30) as http, anyio.create_task_group() as tg:
        tg.start_soon(call, http, "A", 2)
        tg.start_soon(call, http, "B", 4)
    for token, steps in (("A", 2), ("B", 4)):
        progress = [m["params"] for m in seen[token] if m.get("method") == "notifications/progress"]
        assert [p["progressToken"] for p in progress] == [token] * steps, seen
        assert seen[token][-1]["id"] == 7 and seen[token][-1]["result"]["content"][0]["text"] == "ok", seen


async def test_an_id_in_flight_on_an_http_sse_session_is_refused(gateway: Running) -> None:
    """HTTP+SSE answers every request on the one stream: two with one id were both answered, with
    that id, and the client could not tell which answer was whose. The second POST is refused now."""
    headers = {"authorization": f"Bearer {TOKEN}"}
    other = (await create_token(gateway, servers="*"))["token"]
    async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=httpx2.Timeout(30, read=60)) as http:
        async with http.stream("GET", "/servers/vs/sse", headers={**headers, "accept": "text/event-stream"}) as stream:
            lines = stream.aiter_lines()

            async def next_message() -> dict[str, Any]:
                async for line in lines:
                    if line.startswith("data:") and line[5:].strip().startswith("{"):
                        return dict(json.loads(line[5:]))
                raise AssertionError("the stream ended")

            endpoint = ""
            async for line in lines:
                if line.startswith("data:"):
                    endpoint = line[5:].strip()
                    break
            params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
            await http.post(endpoint, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
            assert (await next_message())["id"] == 1
            await http.post(endpoint, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
            first = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": SLOW}
            assert (await http.post(endpoint, headers=headers, json=first)).status_code == 202
            _refused(await http.post(endpoint, headers=headers, json={**first, "id": "7"}), "7")
            # Someone else posting to the session is told only that there is no such session.
            stranger = await http.post(endpoint, headers={"authorization": f"Bearer {other}"}, json=first)
            assert stranger.status_code == 404, stranger.text
            answer = await next_message()
            assert answer["id"] == 7 and answer["result"]["content"][0]["text"] == "done", answer
            for attempt in range(500):  # the id is free once the answer is written
                again = await http.post(endpoint, headers=headers, json={"jsonrpc": "2.0", "id": 7, "method": "ping"})
                if again.status_code == 202:
                    break
                _refused(again, 7)
                await anyio.sleep(0.02)
            else:
                raise AssertionError("request id 7 stayed in flight")
            assert await next_message() == {"jsonrpc": "2.0", "id": 7, "result": {}}
