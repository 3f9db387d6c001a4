"""Attack class: an upstream's answer spells NaN, Infinity or -Infinity (Python's json module writes
them; they are not JSON). Bastion's parsers and the SDK's read them as floats: the REST facade's
encoder refused them (a 500, on the plain call and on an async call's status URL) and the MCP endpoint,
in both eras, relayed them as the same non-JSON literals, which strict clients fail on. Discovery
already refused them in tool definitions (a 502). Now a result, or a message on a call's stream,
that spells one is refused where the upstream's JSON is parsed, on each transport: the call gets the
upstream protocol error (502, a JSON-RPC error) that says why, the session and the upstream's other
tools go on, and nothing Bastion sends holds the literals."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.attacks.test_upstream_surrogates import BAD, modern_upstream
from tests.harness import TOKEN, Running, serve, serve_asgi, settings_for

pytestmark = pytest.mark.anyio

_STRUCTURED = '{"content":[{"type":"text","text":"NaN and Infinity"}],"structuredContent":{"a":NaN,"b":Infinity,"c":-Infinity}}'
_NOTE = '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":{"x":NaN}}}'


def _answer(kind: str, rid: Any) -> Response:
    """The unfit answer to request `rid`: a JSON body, or an event stream whose notification comes first."""
    answer = f'{{"jsonrpc":"2.0","id":{json.dumps(rid)},"result":{_STRUCTURED}}}'
    if kind == "sse":
        return Response(f"event: message\ndata: {_NOTE}\n\nevent: message\ndata: {answer}\n\n".encode(), media_type="text/event-stream")
    return Response(answer.encode(), media_type="application/json")


def _strict(text: str) -> Any:
    """JSON as a strict client reads it: the literals NaN and Infinity are an error."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"Bastion sent the literal {constant}: {text}")

    return json.loads(text, parse_constant=refuse)


def legacy_upstream(kind: str) -> Starlette:
    """A 2025-11-25 streamable HTTP server (Bastion reaches it through the SDK's client) whose `bad`
    answers with the literals, as JSON or on an event stream, and whose `good` answers plainly."""

    async def mcp(request: Request) -> Response:
        if request.method != "POST":
            return Response(status_code=405)
        message = json.loads(await request.body())
        method, rid = message.get("method"), message.get("id")
        if rid is None:
            return Response(status_code=202)
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "result": {}}
        headers = None
        if method == "server/discover":
            reply = {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no"}}
        elif method == "initialize":
            reply["result"] = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "up", "version": "1"}}
            headers = {"mcp-session-id": "s1"}
        elif method == "tools/list":
            reply["result"] = {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in ("bad", "good")]}
        elif method == "tools/call" and message["params"]["name"] == "bad":
            return _answer(kind, rid)
        elif method == "tools/call":
            reply["result"] = {"content": [{"type": "text", "text": "fine"}]}
        return Response(json.dumps(reply).encode(), media_type="application/json", headers=headers)

    return Starlette(routes=[Route("/mcp", mcp, methods=["GET", "POST", "DELETE"])])


def sse_upstream() -> Starlette:
    """A legacy HTTP+SSE server in raw JSON-RPC (the SDK's SSE client carries it): every message on
    one stream, so a refused answer must not end it. `bad` sends a notification, then answers, with the literals."""
    sessions: dict[str, Any] = {}

    async def stream(request: Request) -> Response:
        send, receive = anyio.create_memory_object_stream[str](100)
        session = str(len(sessions))
        sessions[session] = send

        async def events() -> Any:
            yield f"event: endpoint\ndata: /messages?session_id={session}\n\n"
            async for data in receive:
                yield f"event: message\ndata: {data}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def post(request: Request) -> Response:
        message = json.loads(await request.body())
        send, rid = sessions[request.query_params["session_id"]], message.get("id")
        method, params = message.get("method"), message.get("params") or {}
        result: dict[str, Any] = {}
        if rid is None:
            return Response(status_code=202)
        if method == "initialize":
            result = {"protocolVersion": params["protocolVersion"], "capabilities": {"tools": {}}, "serverInfo": {"name": "odd", "version": "1"}}
        elif method == "tools/list":
            result = {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in ("bad", "good")]}
        elif method == "tools/call" and params.get("name") == "bad":
            await send.send(_NOTE)
            await send.send(f'{{"jsonrpc":"2.0","id":{json.dumps(rid)},"result":{_STRUCTURED}}}')
            return Response(status_code=202)
        elif method == "tools/call":
            result = {"content": [{"type": "text", "text": "fine"}]}
        await send.send(json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}))
        return Response(status_code=202)

    return Starlette(routes=[Route("/sse", stream), Route("/messages", post, methods=["POST"])])


# A stdio MCP server (Bastion's own stdio reader) whose `bad` sends a notification, then answers, with the literals.
STDIO = r"""
import json, sys
NOTE, STRUCTURED = sys.argv[1], sys.argv[2]
def send(text):
    sys.stdout.write(text + "\n"); sys.stdout.flush()
for line in sys.stdin:
    msg = json.loads(line)
    mid, method = msg.get("id"), msg.get("method")
    if mid is None:
        continue
    if method == "initialize":
        res = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}}, "serverInfo": {"name": "odd", "version": "1"}}
    elif method == "tools/list":
        res = {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in ("bad", "good")]}
    elif method == "tools/call" and msg["params"]["name"] == "bad":
        send(NOTE)
        send('{"jsonrpc":"2.0","id":' + json.dumps(mid) + ',"result":' + STRUCTURED + "}")
        continue
    elif method == "tools/call":
        res = {"content": [{"type": "text", "text": "fine"}]}
    else:
        res = {}
    send(json.dumps({"jsonrpc": "2.0", "id": mid, "result": res}))
"""


async def _mcp_call(gw: Running, name: str, arguments: dict[str, Any]) -> Any:
    """A 2026-07-28 tools/call through the gateway as a raw client, asking for progress (so the answer
    may be an event stream): every message in the answer parsed strictly; the last one returned."""
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, "progressToken": "p1"}
    headers = {"authorization": f"Bearer {TOKEN}", "accept": "application/json, text/event-stream",
               "content-type": "application/json", "mcp-protocol-version": "2026-07-28",
               "mcp-method": "tools/call", "mcp-name": name}
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": arguments, "_meta": meta}}
    async with httpx2.AsyncClient(timeout=60) as http:
        answered = await http.post(gw.mcp_url("vs"), headers=headers, content=json.dumps(call).encode())
    assert answered.status_code == 200, answered.text
    texts = [answered.text]
    if answered.headers.get("content-type", "").startswith("text/event-stream"):
        texts = [line[5:] for line in answered.text.splitlines() if line.startswith("data:")]
    return [_strict(text) for text in texts][-1]


async def _legacy_call(gw: Running, name: str, arguments: dict[str, Any]) -> str:
    """A 2025-11-25 session's tools/call with the SDK client (asking for progress): its error's message, or its result as JSON."""
    from mcp import MCPError

    async def on_progress(_progress: float, _total: float | None, _message: str | None) -> None:
        pass

    async with gw.client("vs") as client:
        try:
            result = await client.call_tool(name, arguments, progress_callback=on_progress)
        except MCPError as exc:
            return f"error: {exc.message}"
    return json.dumps(result.model_dump(mode="json"), allow_nan=False)


async def _refused_everywhere(gw: Running, bad: str, good: str, bad_args: dict[str, Any], good_args: dict[str, Any]) -> None:
    from tests.e2e.test_facade_async import ASYNC, events

    with anyio.fail_after(120):  # a hang guard: a refused answer ends its call
        modern = await _mcp_call(gw, bad, bad_args)
        legacy = await _legacy_call(gw, bad, bad_args)
        facade = await gw.api.post(f"/api/v1/servers/vs/tools/{bad}", json=bad_args)
        started = await gw.api.post(f"/api/v1/servers/vs/tools/{bad}", json=bad_args, headers=ASYNC)
        assert started.status_code == 202, started.text
        async for ended, outcome in events(gw.api, started.json()["events_url"], until="error"):
            _strict(json.dumps(outcome))
        status = await gw.api.get(started.headers["location"])
    assert modern["error"]["data"]["type"] == "UpstreamProtocolError", modern
    assert facade.status_code == 502, facade.text
    assert ended == "error" and outcome["error"]["status"] == 502, outcome
    assert status.status_code == 200 and _strict(status.text)["state"] == "failed", status.text
    for answer in (modern["error"]["message"], legacy, facade.json()["detail"], outcome["error"]["detail"]):
        assert "sent a number JSON cannot carry (" in answer, answer
    # The session, the upstream's other tools and the gateway go on.
    assert "error" not in await _mcp_call(gw, good, good_args)
    assert not (await _legacy_call(gw, good, good_args)).startswith("error")
    assert (await gw.api.post(f"/api/v1/servers/vs/tools/{good}", json=good_args)).status_code == 200
    assert (await gw.api.get("/readyz")).status_code == 200


@pytest.mark.parametrize("kind", ["json", "sse"])
async def test_a_2025_upstream_answering_with_nan_is_refused(tmp_path: Path, kind: str) -> None:
    async with serve_asgi(legacy_upstream(kind)) as url, serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gw:
        await gw.register({"name": "up", "transport": "streamable-http", "url": f"{url}/mcp"})
        await gw.create_server({"name": "vs", "upstreams": ["up"]})
        await _refused_everywhere(gw, "up__bad", "up__good", {}, {})


@pytest.mark.parametrize("kind", ["json", "sse"])
async def test_a_modern_upstream_answering_with_nan_is_refused(tmp_path: Path, kind: str) -> None:
    async with serve_asgi(modern_upstream(kind, _answer), lifespan="on") as url, serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gw:
        await gw.register({"name": "up", "transport": "streamable-http", "url": f"{url}/mcp"})
        await gw.create_server({"name": "vs", "upstreams": ["up"]})
        await _refused_everywhere(gw, "up__echo", "up__add", {"text": BAD}, {"a": 1, "b": 2})


async def test_a_stdio_upstream_answering_with_nan_is_refused(tmp_path: Path) -> None:
    async with serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gw:
        await gw.register({"name": "up", "transport": "stdio", "command": sys.executable, "args": ["-c", STDIO, _NOTE, _STRUCTURED]})
        await gw.create_server({"name": "vs", "upstreams": ["up"]})
        await _refused_everywhere(gw, "up__bad", "up__good", {}, {})


async def test_a_legacy_sse_upstream_answering_with_nan_is_refused(tmp_path: Path) -> None:
    async with serve_asgi(sse_upstream()) as url, serve(settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db")) as gw:
        await gw.register({"name": "up", "transport": "sse", "url": f"{url}/sse"})
        await gw.create_server({"name": "vs", "upstreams": ["up"]})
        await _refused_everywhere(gw, "up__bad", "up__good", {}, {})
