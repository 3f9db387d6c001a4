"""SEP-1699 on the fast path: a plain 2025-11-25 call whose upstream logs is answered on an SSE stream
that opens with a priming event and a retry field, whose events all carry ids, and which a client that
lost it resumes with GET + Last-Event-ID, getting the rest and the reply exactly once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.server import MCPServer
from mcp.server.mcpserver import Context

from tests.harness import TOKEN, Running, open_raw_session, serve, serve_asgi, session_headers, settings_for

pytestmark = pytest.mark.anyio



class Gate:
    """An upstream whose tool logs "one", waits until the test opens the gate, logs "two", answers."""

    def __init__(self) -> None:
        self.open = anyio.Event()
        self.mcp = MCPServer("gated")

        @self.mcp.tool()
        async def two_logs(ctx: Context) -> str:
            await ctx.info("one")
            await self.open.wait()
            await ctx.info("two")
            return "done"


@pytest.fixture
async def gate() -> Gate:
    return Gate()


@pytest.fixture
async def gateway(gate: Gate, tmp_path: Path) -> AsyncIterator[Running]:
    app = gate.mcp.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    async with serve_asgi(app, lifespan="on") as upstream:
        async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as running:
            await running.register({"name": "gated", "transport": "streamable-http", "url": f"{upstream}/mcp"})
            await running.create_server({"name": "vs", "upstreams": ["gated"]})
            yield running


async def _events(response: httpx2.Response) -> AsyncIterator[dict[str, str]]:
    """The SSE events of a response, as {field: value}."""
    current: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line:
            name, _, value = line.partition(":")
            current[name] = value.removeprefix(" ")
        elif current:
            yield current
            current = {}


def _message(event: dict[str, str]) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(event["data"])
    return message


CALL = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "gated__two_logs", "arguments": {}}}


async def _call_until_first_log(http: httpx2.AsyncClient, url: str, session_id: str) -> list[dict[str, str]]:
    """POST the call and read its stream up to the first log event, then drop the connection."""
    seen: list[dict[str, str]] = []
    with anyio.fail_after(20):
        async with http.stream("POST", url, headers=session_headers(session_id), json=CALL) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            async for event in _events(response):
                seen.append(event)
                if event.get("data"):
                    break
    return seen


def _resume_headers(session_id: str, last_event_id: str, token: str = TOKEN) -> dict[str, str]:
    headers = {k: v for k, v in session_headers(session_id, token).items() if k != "Content-Type"}
    return headers | {"Last-Event-ID": last_event_id}


async def test_a_dropped_stream_resumes_with_the_rest_and_the_reply_exactly_once(gateway: Running, gate: Gate) -> None:
    url = gateway.mcp_url("vs")
    async with httpx2.AsyncClient(timeout=30) as http:
        session_id = await open_raw_session(http, url)
        priming, first = await _call_until_first_log(http, url, session_id)
        # SEP-1699: the stream opens with a cursor (an id, no data) and says how soon to come back.
        assert priming["id"] and priming["data"] == "" and int(priming["retry"]) > 0
        assert first["id"] and _message(first)["params"]["data"] == "one"

        rest: list[dict[str, str]] = []
        with anyio.fail_after(20):
            async with http.stream("GET", url, headers=_resume_headers(session_id, first["id"])) as resumed:
                assert resumed.status_code == 200
                gate.open.set()  # the upstream goes on only now: what follows comes live, on this GET
                rest = [event async for event in _events(resumed) if event.get("data")]
    messages = [_message(event) for event in rest]
    assert [m.get("params", {}).get("data") for m in messages[:-1]] == ["two"]
    assert messages[-1]["id"] == 5 and messages[-1]["result"]["content"][0]["text"] == "done"
    assert all(event["id"] for event in rest) and len({e["id"] for e in [priming, first, *rest]}) == 4


async def test_losing_a_streamed_answer_does_not_cancel_the_call(gateway: Running, gate: Gate) -> None:
    """The stream is lost and the call ends while nobody listens: the SDK replays it from the store."""
    url = gateway.mcp_url("vs")
    async with httpx2.AsyncClient(timeout=30) as http:
        session_id = await open_raw_session(http, url)
        _, first = await _call_until_first_log(http, url, session_id)
        gate.open.set()
        replies: list[dict[str, Any]] = []
        with anyio.fail_after(20):
            async with http.stream("GET", url, headers=_resume_headers(session_id, first["id"])) as resumed:
                assert resumed.status_code == 200
                async for event in _events(resumed):
                    if event.get("data"):
                        replies.append(_message(event))
                        if "id" in replies[-1]:
                            break
    assert [m.get("params", {}).get("data") for m in replies[:-1]] == ["two"]
    assert replies[-1]["result"]["content"][0]["text"] == "done"


async def test_another_caller_cannot_resume_a_stream(gateway: Running, gate: Gate) -> None:
    url = gateway.mcp_url("vs")
    created = await gateway.api.post("/api/v1/tokens", json={"name": "other", "servers": ["vs"]})
    assert created.status_code == 201, created.text
    other = created.json()["token"]
    async with httpx2.AsyncClient(timeout=30) as http:
        session_id = await open_raw_session(http, url)
        _, first = await _call_until_first_log(http, url, session_id)
        stolen = await http.get(url, headers=_resume_headers(session_id, first["id"], token=other))
        gate.open.set()
    assert stolen.status_code == 404


async def test_a_call_cancelled_mid_stream_ends_its_stream_cleanly(gateway: Running, gate: Gate) -> None:
    url = gateway.mcp_url("vs")
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5}}
    async with httpx2.AsyncClient(timeout=30) as http:
        session_id = await open_raw_session(http, url)
        with anyio.fail_after(20):
            async with http.stream("POST", url, headers=session_headers(session_id), json=CALL) as response:
                events = _events(response)
                async for event in events:
                    if event.get("data"):
                        break
                assert (await http.post(url, headers=session_headers(session_id), json=cancel)).status_code == 202
                # The stream ends, complete, with no reply (as directly: a cancelled request gets none).
                rest = [event async for event in events if event.get("data")]
    assert rest == []
