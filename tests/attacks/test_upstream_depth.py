"""Attack class: an upstream answers with JSON nested deeper than Bastion's limit (128 levels).

Before, a stdio answer deeper than the MCP SDK's parser takes (about 200 levels) was dropped as it
was read: registering an upstream whose tools/list held a 100-level schema waited out the whole call
timeout and answered 504, a tools/call so answered did too, and a question the upstream asked that
deeply was never answered (the upstream waited, and so did the call). A 2026-07-28 HTTP upstream's
answer was parsed whatever its depth (json.loads recursing in C). Now every such message is refused
where it is read, before parsing: the request it answers fails at once with an error naming the
limit, the upstream is told its own question was refused, and the upstream stays usable."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import MCPError
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Scope

from tests.attacks.network import answering, header, public_upstream, strict_gateway
from tests.harness import Running, serve, serve_asgi, settings_for

pytestmark = pytest.mark.anyio

RULE = "nested deeper than 128 levels"
GUARD = 20  # seconds: a hang guard only; every call timeout here is 60 s, so old code hangs into it


def deep_schema(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def deep_value(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


# A stdio MCP server in raw JSON-RPC. With "deep-list" its tools/list holds a 100-level schema;
# `deep` answers nested 300 levels (its id first, or last with id_last), `fine` answers plainly,
# `asks` first asks Bastion a question nested 300 levels deep and answers with what it was told.
SERVER = r'''
import json, sys
def deep(n):
    v = 1
    for _ in range(n):
        v = [v]
    return v
def schema(n):
    v = {"type": "string"}
    for _ in range(n):
        v = {"type": "object", "properties": {"a": v}}
    return v
def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n"); sys.stdout.flush()
for line in sys.stdin:
    msg = json.loads(line)
    mid, method = msg.get("id"), msg.get("method")
    if mid is None or method is None:
        continue
    if method == "initialize":
        res = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}}, "serverInfo": {"name": "deep", "version": "1"}}
    elif method == "tools/list":
        tools = [{"name": n, "inputSchema": {"type": "object"}} for n in ("deep", "fine", "asks")]
        if "deep-list" in sys.argv:
            tools.append({"name": "nested", "inputSchema": schema(100)})
        res = {"tools": tools}
    elif method == "tools/call":
        name, args = msg["params"]["name"], msg["params"].get("arguments") or {}
        if name == "deep":
            body = {"result": {"content": [{"type": "text", "text": "deep"}], "structuredContent": {"x": deep(300)}}}
            send({"jsonrpc": "2.0", **body, "id": mid} if args.get("id_last") else {"jsonrpc": "2.0", "id": mid, **body})
            continue
        if name == "asks":
            send({"jsonrpc": "2.0", "id": "up-1", "method": "roots/list", "params": {"x": deep(300)}})
            told = None
            for reply in sys.stdin:
                told = json.loads(reply)
                if told.get("id") == "up-1":
                    break
            res = {"content": [{"type": "text", "text": json.dumps(told)}]}
        else:
            res = {"content": [{"type": "text", "text": "fine"}]}
    else:
        res = {}
    send({"jsonrpc": "2.0", "id": mid, "result": res})
'''


def stdio_body(name: str, *extra: str) -> dict[str, Any]:
    return {"name": name, "transport": "stdio", "command": sys.executable, "args": ["-c", SERVER, *extra]}


def refused(response: Any) -> str:
    assert response.status_code == 502, response.text
    detail = str(response.json()["detail"])
    assert RULE in detail, detail
    return detail


async def question_refused_then_fine(client: Any) -> None:
    """The upstream's own question, nested too deep: it is told so, its call ends, the next call works."""
    asked = await client.call_tool("pub__asks", {})
    told = json.loads(asked.content[0].text)
    assert told["error"]["code"] == -32600 and RULE in told["error"]["message"], told
    fine = await client.call_tool("pub__fine", {})
    assert fine.content[0].text == "fine"


async def test_a_stdio_tools_list_nested_too_deep_fails_registration_at_once(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", call_timeout=60.0)
    async with serve(settings) as gateway:
        with anyio.fail_after(GUARD):
            response = await gateway.api.post("/api/v1/upstreams", json=stdio_body("deep", "deep-list"))
        assert "'deep'" in refused(response)


async def test_a_stdio_answer_or_question_nested_too_deep_is_refused_and_the_upstream_stays_usable(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", call_timeout=60.0)
    async with serve(settings) as gateway:
        await gateway.register(stdio_body("pub"))
        await gateway.create_server({"name": "vs", "upstreams": ["pub"]})
        async with gateway.client("vs") as client:
            with anyio.fail_after(GUARD):
                for id_last in (False, True):
                    with pytest.raises(MCPError) as answered:
                        await client.call_tool("pub__deep", {"id_last": id_last})
                    assert RULE in answered.value.message, answered.value.message
                    assert "'pub'" in answered.value.message
                    fine = await client.call_tool("pub__fine", {})
                    assert fine.content[0].text == "fine"  # type: ignore[union-attr]
                await question_refused_then_fine(client)


def deep_http(how: str) -> Any:
    """An HTTP upstream (2026-07-28) answering tools/list or tools/call nested 300 levels deep."""

    async def decide(scope: Scope) -> Response | None:
        method = header(scope, "mcp-method")
        if scope["method"] != "POST" or method not in ("tools/list", "tools/call"):
            return None
        if method == "tools/list" and how != "list" or method == "tools/call" and header(scope, "mcp-name") != "echo":
            return None
        result: dict[str, Any] = {"tools": [{"name": "echo", "inputSchema": deep_schema(100)}]} if how == "list" else (
            {"content": [{"type": "text", "text": "deep"}], "structuredContent": {"x": deep_value(300)}}
        )
        # Bastion's lean client numbers its requests from 1 per connection; the id is not checked on a JSON body.
        body = {"jsonrpc": "2.0", "id": 0, "result": result}
        if how == "event":
            data = json.dumps({**body, "id": "whatever"})
            return Response(f"event: message\ndata: {data}\n\n", media_type="text/event-stream")
        return JSONResponse(body)

    return answering(decide)


async def register_http(gateway: Running, url: str) -> Any:
    with anyio.fail_after(GUARD):
        return await gateway.api.post("/api/v1/upstreams", json={"name": "pub", "transport": "streamable-http", "url": url})


async def test_an_http_tools_list_nested_too_deep_fails_registration(tmp_path: Path) -> None:
    async with public_upstream(deep_http("list")) as url, strict_gateway(tmp_path, call_timeout=60.0) as gateway:
        assert "'pub'" in refused(await register_http(gateway, url))


@pytest.mark.parametrize("how", ["json", "event"])
async def test_an_http_tools_call_answer_nested_too_deep_is_refused(tmp_path: Path, how: str) -> None:
    async with public_upstream(deep_http(how)) as url, strict_gateway(tmp_path, call_timeout=60.0) as gateway:
        assert (await register_http(gateway, url)).status_code == 201
        await gateway.create_server({"name": "vs", "upstreams": ["pub"], "visibility": "public"})
        async with gateway.client("vs", mode="2026-07-28") as client:
            with anyio.fail_after(GUARD):
                with pytest.raises(MCPError) as answered:
                    await client.call_tool("pub__echo", {"text": "x"})
                assert RULE in answered.value.message, answered.value.message
                added = await client.call_tool("pub__add", {"a": 2, "b": 3})
                assert not added.is_error


def sse_upstream(deep_list: bool) -> Any:
    """A legacy SSE MCP server in raw JSON-RPC (the SDK's SSE client carries it) with the tools of
    SERVER: its answers and its question nested 300 levels deep, or its tools/list 100 levels."""
    sessions: dict[str, Any] = {}
    asked: dict[str, Any] = {}

    def answer(message: dict[str, Any]) -> dict[str, Any] | None:
        method, params = message.get("method"), message.get("params") or {}
        if method == "initialize":
            info = {"name": "deep", "version": "1"}
            return {"result": {"protocolVersion": params["protocolVersion"], "capabilities": {"tools": {}}, "serverInfo": info}}
        if method == "tools/list":
            tools: list[dict[str, Any]] = [{"name": n, "inputSchema": {"type": "object"}} for n in ("deep", "fine", "asks")]
            return {"result": {"tools": tools + ([{"name": "nested", "inputSchema": deep_schema(100)}] if deep_list else [])}}
        if method == "tools/call" and params.get("name") == "deep":
            return {"result": {"content": [{"type": "text", "text": "deep"}], "structuredContent": {"x": deep_value(300)}}}
        if method == "tools/call":
            return {"result": {"content": [{"type": "text", "text": "fine"}]}}
        return {"result": {}} if method == "ping" else {"error": {"code": -32601, "message": "no such method"}}

    async def stream(request: Any) -> Response:
        send, receive = anyio.create_memory_object_stream[str](100)
        session = str(len(sessions))
        sessions[session] = send

        async def events() -> Any:
            yield f"event: endpoint\ndata: /messages?session_id={session}\n\n"
            async for data in receive:
                yield f"event: message\ndata: {data}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def post(request: Any) -> Response:
        message = json.loads(await request.body())
        send = sessions[request.query_params["session_id"]]
        if message.get("id") == "up-1" and "method" not in message:  # what Bastion told it
            content = [{"type": "text", "text": json.dumps(message)}]
            await send.send(json.dumps({"jsonrpc": "2.0", "id": asked.pop("id"), "result": {"content": content}}))
        elif "id" in message and (message.get("params") or {}).get("name") == "asks":
            asked["id"] = message["id"]
            await send.send(json.dumps({"jsonrpc": "2.0", "id": "up-1", "method": "roots/list", "params": {"x": deep_value(300)}}))
        elif "id" in message and (reply := answer(message)) is not None:
            await send.send(json.dumps({"jsonrpc": "2.0", "id": message["id"], **reply}))
        return Response(status_code=202)

    return Starlette(routes=[Route("/sse", stream), Route("/messages", post, methods=["POST"])])


async def test_a_legacy_sse_tools_list_nested_too_deep_fails_registration_at_once(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", call_timeout=60.0)
    async with serve_asgi(sse_upstream(True)) as url, serve(settings) as gateway:
        with anyio.fail_after(GUARD):
            response = await gateway.api.post("/api/v1/upstreams", json={"name": "deep", "transport": "sse", "url": f"{url}/sse"})
        assert "'deep'" in refused(response)


async def test_a_legacy_sse_answer_or_question_nested_too_deep_is_refused(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/b.db", call_timeout=60.0)
    async with serve_asgi(sse_upstream(False)) as url, serve(settings) as gateway:
        await gateway.register({"name": "pub", "transport": "sse", "url": f"{url}/sse"})
        await gateway.create_server({"name": "vs", "upstreams": ["pub"]})
        async with gateway.client("vs") as client:
            with anyio.fail_after(GUARD):
                with pytest.raises(MCPError) as answered:
                    await client.call_tool("pub__deep", {})
                assert RULE in answered.value.message and "'pub'" in answered.value.message, answered.value.message
                await question_refused_then_fine(client)


def deep_legacy_call(app: Any) -> Any:
    """Middleware: a 2025-11-25 session's tools/call of `echo` is answered nested 300 levels deep
    (found by its body: that era's requests carry no Mcp-Method header)."""

    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        body = b""
        while True:
            part = await receive()
            body += part.get("body", b"")
            if not part.get("more_body"):
                break
        message = json.loads(body)
        if message.get("method") == "tools/call" and message["params"].get("name") == "echo":
            result = {"content": [{"type": "text", "text": "deep"}], "structuredContent": {"x": deep_value(300)}}
            await JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": result})(scope, receive, send)
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await app(scope, replay, send)

    return wrapped


async def test_a_legacy_http_session_answer_nested_too_deep_names_the_limit(tmp_path: Path) -> None:
    async with public_upstream(deep_legacy_call, stateless=False) as url, strict_gateway(tmp_path, call_timeout=60.0) as gateway:
        body = {"name": "pub", "transport": "streamable-http", "url": url, "protocol": "2025-11-25"}
        await gateway.register(body)
        await gateway.create_server({"name": "vs", "upstreams": ["pub"], "visibility": "public"})
        async with gateway.client("vs") as client:
            with anyio.fail_after(GUARD):
                with pytest.raises(MCPError) as answered:
                    await client.call_tool("pub__echo", {"text": "x"})
                assert RULE in answered.value.message and "'pub'" in answered.value.message, answered.value.message
                added = await client.call_tool("pub__add", {"a": 2, "b": 3})
                assert not added.is_error
